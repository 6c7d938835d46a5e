// The zips `make package` builds, checked before anything deploys: the architecture of the
// `bootstrap` inside each (its ELF header) must be the stack's, read from real zip archives made
// here (deflated as cargo-lambda writes them, and stored).

import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";

import { ArtifactError, checkedArtifact, zipArchitecture, zipEntryPrefix } from "../artifacts";
import { loadSettings, Settings } from "../config";
import { rustFunction } from "../functions";
import { E_MACHINE, elfExecutable, writeLambdaZip, zipArchive } from "./fixtures";
import { FUNCTIONS, runProgram } from "./harness";

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "iops-ws-zips-"));
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const settings = (values: Record<string, string>): Settings =>
    loadSettings({ get: (key) => ({ createMetricsTable: "true", artifactsDir: dir, ...values })[key] }, "iops-ws", "test");

describe("reading a zip's bootstrap", () => {
    it("finds the ELF machine of a deflated and of a stored bootstrap", () => {
        assert.equal(zipArchitecture(writeLambdaZip(dir, "deflated-x86", "x86_64")), "x86_64");
        assert.equal(zipArchitecture(writeLambdaZip(dir, "deflated-arm", "arm64")), "arm64");
        assert.equal(zipArchitecture(writeLambdaZip(dir, "stored-arm", "arm64", "bootstrap.zip", 0)), "arm64");
    });

    it("finds bootstrap among other entries", () => {
        const zip = zipArchive([
            { name: "README", data: Buffer.from("hello") },
            { name: "bootstrap", data: elfExecutable(E_MACHINE.arm64, 200000) },
        ]);
        assert.equal(zipEntryPrefix(zip, "bootstrap", 4).toString("latin1"), "\x7fELF");
        const file = path.join(dir, "two.zip");
        fs.writeFileSync(file, zip);
        assert.equal(zipArchitecture(file), "arm64");
    });

    const refused: [string, Buffer, RegExp][] = [
        ["not a zip", Buffer.from("not a zip"), /not a zip archive/],
        ["a zip without bootstrap", zipArchive([{ name: "main", data: elfExecutable(E_MACHINE.x86_64) }]), /no bootstrap at its root/],
        ["a bootstrap that is a script", zipArchive([{ name: "bootstrap", data: Buffer.from("#!/bin/sh\nexec ./main\n") }]), /not an ELF executable/],
        ["another machine", zipArchive([{ name: "bootstrap", data: elfExecutable(E_MACHINE.riscv) }]), /machine 0xf3, neither x86_64 \(0x3e\) nor aarch64 \(0xb7\)/],
    ];
    for (const [what, bytes, message] of refused) {
        it(`refuses ${what}`, () => {
            const file = path.join(dir, `refused-${what.replace(/\W+/g, "-")}.zip`);
            fs.writeFileSync(file, bytes);
            assert.throws(() => zipArchitecture(file), (e: unknown) => e instanceof ArtifactError && message.test(e.message) && e.message.startsWith(file));
        });
    }
});

describe("the stack's architecture", () => {
    const fn = { fn: "fanout" as const, memoryMb: 128, timeoutSeconds: 3, environment: {}, statements: () => [] };

    it("an x86_64 build for an arm64 stack stops the program, naming both and the fix", () => {
        writeLambdaZip(dir, "fanout", "x86_64");
        assert.throws(
            () => rustFunction(settings({ architecture: "arm64" }), fn),
            (e: unknown) =>
                e instanceof ArtifactError &&
                /fanout\/bootstrap\.zip holds a x86_64 bootstrap but the stack's architecture is arm64: run `LAMBDA_ARCH=arm64 make package`/.test(e.message),
        );
    });

    it("an arm64 build for an x86_64 stack too", () => {
        writeLambdaZip(dir, "fanout", "arm64");
        assert.throws(() => checkedArtifact(settings({}), "fanout"), /holds a arm64 bootstrap but the stack's architecture is x86_64/);
    });

    it("a matching build passes, with the commit package.sh recorded", () => {
        writeLambdaZip(dir, "fanout", "arm64");
        fs.writeFileSync(path.join(dir, "fanout", "bootstrap.json"), JSON.stringify({ function: "fanout", arch: "arm64", git: "0123456789ab" }));
        assert.deepEqual(checkedArtifact(settings({ architecture: "arm64" }), "fanout"), {
            zip: path.join(dir, "fanout", "bootstrap.zip"),
            build: "0123456789ab",
        });
    });

    it("a manifest that contradicts the stack stops it as well", () => {
        writeLambdaZip(dir, "fanout", "arm64");
        fs.writeFileSync(path.join(dir, "fanout", "bootstrap.json"), JSON.stringify({ arch: "x86_64", git: "0123456789ab" }));
        assert.throws(() => checkedArtifact(settings({ architecture: "arm64" }), "fanout"), /bootstrap\.json says x86_64, the stack is arm64/);
    });

    it("artifactBuild deploys package.sh's per-commit copy for the stack's architecture", () => {
        writeLambdaZip(dir, "fanout", "arm64", "bootstrap-0123456789ab-arm64.zip");
        const s = settings({ architecture: "arm64", artifactBuild: "0123456789ab" });
        assert.equal(checkedArtifact(s, "fanout").zip, path.join(dir, "fanout", "bootstrap-0123456789ab-arm64.zip"));
        assert.throws(() => checkedArtifact(settings({ architecture: "arm64", artifactBuild: "fedcba987654" }), "fanout"), /bootstrap-fedcba987654-arm64\.zip is missing.*at commit fedcba987654/);
    });
});

describe("the whole program", () => {
    it("refuses to deploy an x86_64 build to an arm64 stack", async () => {
        const x86 = fs.mkdtempSync(path.join(os.tmpdir(), "iops-ws-x86-"));
        after(() => fs.rmSync(x86, { recursive: true, force: true }));
        for (const f of FUNCTIONS) writeLambdaZip(x86, f, "x86_64");
        await assert.rejects(runProgram({ artifactsDir: x86, createMetricsTable: "true", architecture: "arm64" }), /holds a x86_64 bootstrap but the stack's architecture is arm64/);
    });
});
