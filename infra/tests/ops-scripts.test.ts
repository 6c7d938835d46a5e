// The scripts the RUNBOOK runs. scripts/ops-replay-stream-dlq.sh, against a fake `aws` on PATH
// that answers from files and records every call: it must delete a stream DLQ message only when
// the processor really succeeded, and never let the CLI time out and invoke twice.
// scripts/package.sh's record step, in a scratch repository: every build stays addressable by
// commit and architecture, and says which architecture it is.

import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";

import { checkedArtifact } from "../artifacts";
import { loadSettings } from "../config";
import { writeLambdaZip } from "./fixtures";

const ROOT = path.join(__dirname, "..", "..");
const REPLAY = path.join(ROOT, "scripts", "ops-replay-stream-dlq.sh");
const hasJq = spawnSync("jq", ["--version"]).status === 0;

const STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/iops-metrics/stream/2026-01-01T00:00:00.000";
const DLQ_URL = "https://sqs.us-east-1.amazonaws.com/123456789012/iops-ws-prod-stream-dlq";

/** The fake CLI: `<service> <command>` answered from files in $FAKE_AWS, every call logged. */
const FAKE_AWS = `#!/usr/bin/env bash
set -euo pipefail
d=$FAKE_AWS
printf '%s\\n' "$*" >>"$d/calls.log"
case "$1 $2" in
  "sqs receive-message")
    n=$(cat "$d/received" 2>/dev/null || echo 0); n=$((n + 1)); echo "$n" >"$d/received"
    if [ -f "$d/message-$n.json" ]; then cat "$d/message-$n.json"; else echo '{}'; fi ;;
  "dynamodbstreams get-shard-iterator") echo "iterator-1" ;;
  "dynamodbstreams get-records")
    while [ $# -gt 0 ]; do [ "$1" = --shard-iterator ] && it=$2; shift; done
    cat "$d/records-$it.json" ;;
  "lambda invoke")
    echo "AWS_MAX_ATTEMPTS=\${AWS_MAX_ATTEMPTS:-unset}" >>"$d/calls.log"
    for a in "$@"; do case $a in fileb://*) cp "\${a#fileb://}" "$d/payload.json" ;; esac; done
    out=\${@: -1}
    cp "$d/response.json" "$out"
    cat "$d/invoke.json"
    exit "$(cat "$d/invoke-exit" 2>/dev/null || echo 0)" ;;
  "sqs delete-message" | "sqs change-message-visibility") ;;
  *) echo "fake aws: unexpected $*" >&2; exit 2 ;;
esac
`;

function dlqMessage(receipt: string, first: string, last: string, size: number): string {
    const body = {
        requestContext: { requestId: "r-1", functionArn: "arn:aws:lambda:us-east-1:123456789012:function:iops-ws-prod-processor:live", condition: "RetryAttemptsExhausted", approximateInvokeCount: 4 },
        responseContext: { statusCode: 200, executedVersion: "7", functionError: "Unhandled" },
        version: "1.0",
        timestamp: "2026-01-01T00:10:00.000Z",
        DDBStreamBatchInfo: {
            shardId: "shardId-00000001",
            startSequenceNumber: first,
            endSequenceNumber: last,
            approximateArrivalOfFirstRecord: "2026-01-01T00:00:00Z",
            approximateArrivalOfLastRecord: "2026-01-01T00:00:05Z",
            batchSize: size,
            streamArn: STREAM_ARN,
        },
    };
    return JSON.stringify({ Messages: [{ MessageId: "m-1", ReceiptHandle: receipt, Body: JSON.stringify(body) }] });
}

function record(sequence: string, id: string): object {
    return {
        eventID: `e-${sequence}`,
        eventName: "MODIFY",
        eventVersion: "1.1",
        eventSource: "aws:dynamodb",
        awsRegion: "us-east-1",
        dynamodb: {
            ApproximateCreationDateTime: "2026-01-01T00:00:01.123000+00:00",
            Keys: { entity_id: { S: id } },
            NewImage: { entity_id: { S: id }, metric_value: { N: "1" } },
            SequenceNumber: sequence,
            SizeBytes: 40,
            StreamViewType: "NEW_AND_OLD_IMAGES",
        },
    };
}

interface Scenario {
    messages?: string[];
    pages?: Record<string, object>;
    invoke?: object;
    response?: object;
    invokeExit?: number;
}

interface Run {
    status: number | null;
    stdout: string;
    stderr: string;
    calls: string[];
    payload?: any;
}

const dirs: string[] = [];
after(() => dirs.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

// Two records of the batch (a 21-digit and a 22-digit sequence number: compared as strings by
// length, not as doubles) and one after it, which must not be replayed.
const FIRST = "999999999999999999990";
const LAST = "1000000000000000000005";
const AFTER = "1000000000000000000009";
const ONE_PAGE = {
    "iterator-1": { Records: [record(FIRST, "a"), record(LAST, "b"), record(AFTER, "c")], NextShardIterator: "iterator-2" },
};

function run(scenario: Scenario, args: string[] = []): Run {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "iops-ws-fake-aws-"));
    dirs.push(dir);
    fs.writeFileSync(path.join(dir, "aws"), FAKE_AWS, { mode: 0o755 });
    (scenario.messages ?? []).forEach((m, i) => fs.writeFileSync(path.join(dir, `message-${i + 1}.json`), m));
    for (const [iterator, page] of Object.entries(scenario.pages ?? ONE_PAGE)) {
        fs.writeFileSync(path.join(dir, `records-${iterator}.json`), JSON.stringify(page));
    }
    fs.writeFileSync(path.join(dir, "invoke.json"), JSON.stringify(scenario.invoke ?? { StatusCode: 200, ExecutedVersion: "7" }));
    fs.writeFileSync(path.join(dir, "response.json"), JSON.stringify(scenario.response ?? { batchItemFailures: [] }));
    fs.writeFileSync(path.join(dir, "invoke-exit"), String(scenario.invokeExit ?? 0));
    const r = spawnSync("bash", [REPLAY, ...args], {
        encoding: "utf8",
        env: { ...process.env, PATH: `${dir}:${process.env.PATH}`, FAKE_AWS: dir, P: "iops-ws-prod", STREAM_DLQ_URL: DLQ_URL, AWS_MAX_ATTEMPTS: "" },
    });
    const log = path.join(dir, "calls.log");
    const payload = path.join(dir, "payload.json");
    return {
        status: r.status,
        stdout: r.stdout,
        stderr: r.stderr,
        calls: fs.existsSync(log) ? fs.readFileSync(log, "utf8").trim().split("\n") : [],
        payload: fs.existsSync(payload) ? JSON.parse(fs.readFileSync(payload, "utf8")) : undefined,
    };
}

const deletes = (r: Run) => r.calls.filter((c) => c.startsWith("sqs delete-message"));
const invokes = (r: Run) => r.calls.filter((c) => c.startsWith("lambda invoke"));

describe("scripts/ops-replay-stream-dlq.sh", { skip: hasJq ? false : "jq is not installed" }, () => {
    const one = [dlqMessage("receipt-1", FIRST, LAST, 2)];

    it("replays the batch's records to the processor's live alias, then deletes the DLQ message", () => {
        const r = run({ messages: one });
        assert.equal(r.status, 0, r.stderr);
        assert.equal(invokes(r).length, 1);
        assert.match(invokes(r)[0], /--function-name iops-ws-prod-processor --qualifier live /);
        assert.deepEqual(deletes(r), [`sqs delete-message --queue-url ${DLQ_URL} --receipt-handle receipt-1`]);
        // The event as the mapping builds it: only the batch's records, with the stream ARN and
        // epoch-second creation times.
        assert.deepEqual(
            r.payload.Records.map((x: any) => [x.dynamodb.SequenceNumber, x.eventSourceARN, x.dynamodb.ApproximateCreationDateTime]),
            [
                [FIRST, STREAM_ARN, 1767225601],
                [LAST, STREAM_ARN, 1767225601],
            ],
        );
    });

    it("invokes once, without the CLI's 60 s read timeout (the processor may run 300 s)", () => {
        const r = run({ messages: one });
        const invoke = invokes(r)[0];
        assert.match(invoke, /--cli-read-timeout 0( |$)/);
        assert.match(invoke, /--cli-connect-timeout \d+/);
        assert.ok(r.calls.includes("AWS_MAX_ATTEMPTS=1"), r.calls.join("\n"));
        // Hidden for longer than the processor can run, so no second run replays it meanwhile.
        const receive = r.calls.find((c) => c.startsWith("sqs receive-message"));
        assert.ok(receive);
        assert.ok(Number(/--visibility-timeout (\d+)/.exec(receive)![1]) > 900);
    });

    it("keeps the message when the processor failed, although the CLI exits 0", () => {
        const r = run({
            messages: one,
            invoke: { StatusCode: 200, FunctionError: "Unhandled", ExecutedVersion: "7" },
            response: { errorType: "Runtime.ExitError", errorMessage: "broadcast failed" },
        });
        assert.equal(r.status, 1);
        assert.deepEqual(deletes(r), []);
        assert.match(r.stderr, /the processor failed \(Unhandled\).*broadcast failed/s);
    });

    it("keeps the message when the processor reports failed records", () => {
        const r = run({ messages: one, response: { batchItemFailures: [{ itemIdentifier: LAST }] } });
        assert.equal(r.status, 1);
        assert.deepEqual(deletes(r), []);
        assert.match(r.stderr, /reported failed records/);
    });

    it("keeps the message when the invoke itself fails (timeout, throttle, credentials)", () => {
        const r = run({ messages: one, invokeExit: 255 });
        assert.equal(r.status, 1);
        assert.deepEqual(deletes(r), []);
    });

    it("stops at the first failure, leaving later messages alone", () => {
        const r = run({
            messages: [dlqMessage("receipt-1", FIRST, LAST, 2), dlqMessage("receipt-2", FIRST, LAST, 2)],
            invoke: { StatusCode: 200, FunctionError: "Unhandled" },
        });
        assert.equal(r.status, 1);
        assert.equal(invokes(r).length, 1);
    });

    it("replays every message, one invoke each, up to --max", () => {
        const two = [dlqMessage("receipt-1", FIRST, LAST, 2), dlqMessage("receipt-2", FIRST, LAST, 2)];
        const all = run({ messages: two });
        assert.equal(all.status, 0, all.stderr);
        assert.equal(deletes(all).length, 2);
        const capped = run({ messages: two }, ["--max", "1"]);
        assert.equal(capped.status, 0, capped.stderr);
        assert.deepEqual(deletes(capped).map((c) => c.split(" ").pop()), ["receipt-1"]);
    });

    it("follows the shard iterator over empty pages until the batch's last record", () => {
        const r = run({
            messages: one,
            pages: {
                "iterator-1": { Records: [], NextShardIterator: "iterator-2" },
                "iterator-2": { Records: [record(FIRST, "a")], NextShardIterator: "iterator-3" },
                "iterator-3": { Records: [record(LAST, "b")], NextShardIterator: "iterator-4" },
            },
        });
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(r.payload.Records.map((x: any) => x.dynamodb.SequenceNumber), [FIRST, LAST]);
    });

    it("does nothing on an empty DLQ", () => {
        const r = run({ messages: [] });
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(invokes(r), []);
        assert.match(r.stdout, /done: 0 batch/);
    });

    it("--dry-run reads the batch, invokes nothing, deletes nothing, and makes the message visible again", () => {
        const r = run({ messages: one }, ["--dry-run"]);
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(invokes(r), []);
        assert.deepEqual(deletes(r), []);
        assert.ok(r.calls.some((c) => c.startsWith("sqs change-message-visibility") && c.endsWith("--visibility-timeout 0")));
    });

    it("needs the stack's prefix and DLQ", () => {
        const r = spawnSync("bash", [REPLAY], { encoding: "utf8", env: { PATH: process.env.PATH } });
        assert.notEqual(r.status, 0);
        assert.match(r.stderr, /set P/);
    });
});

describe("scripts/package.sh --record-only (what `make package` does after the build)", () => {
    const FNS = ["connect", "disconnect", "message", "processor", "fanout", "authorizer", "canary"];
    const git = (cwd: string, ...args: string[]) => {
        const r = spawnSync("git", ["-c", "user.email=t@example.com", "-c", "user.name=t", ...args], { cwd, encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        return r.stdout.trim();
    };
    /** A repository holding package.sh and built zips for `arch`; returns it and its commit. */
    const repo = (arch: "x86_64" | "arm64"): { dir: string; sha: string } => {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), "iops-ws-package-"));
        dirs.push(dir);
        fs.mkdirSync(path.join(dir, "scripts"));
        fs.copyFileSync(path.join(ROOT, "scripts", "package.sh"), path.join(dir, "scripts", "package.sh"));
        fs.writeFileSync(path.join(dir, ".gitignore"), "/target\n");
        git(dir, "init", "-q");
        git(dir, "add", ".");
        git(dir, "commit", "-qm", "build");
        for (const fn of FNS) writeLambdaZip(path.join(dir, "target", "lambda"), fn, arch);
        return { dir, sha: git(dir, "rev-parse", "--short=12", "HEAD") };
    };
    const record = (dir: string, arch: string) =>
        spawnSync("bash", ["scripts/package.sh", "--record-only"], { cwd: dir, encoding: "utf8", env: { ...process.env, LAMBDA_ARCH: arch } });

    it("keeps each zip as bootstrap-<commit>-<arch>.zip with a manifest naming its architecture", () => {
        const { dir, sha } = repo("arm64");
        const r = record(dir, "arm64");
        assert.equal(r.status, 0, r.stderr);
        for (const fn of FNS) {
            const base = path.join(dir, "target", "lambda", fn);
            assert.deepEqual(fs.readFileSync(path.join(base, `bootstrap-${sha}-arm64.zip`)), fs.readFileSync(path.join(base, "bootstrap.zip")));
            const manifest = JSON.parse(fs.readFileSync(path.join(base, "bootstrap.json"), "utf8"));
            assert.equal(manifest.function, fn);
            assert.equal(manifest.arch, "arm64");
            assert.equal(manifest.git, sha);
            assert.match(manifest.sha256, /^[0-9a-f]{64}$/);
            assert.deepEqual(JSON.parse(fs.readFileSync(path.join(base, `bootstrap-${sha}-arm64.json`), "utf8")), manifest);
        }
        // The program deploys that copy by its commit, and checks its architecture.
        const s = loadSettings(
            { get: (key) => ({ createMetricsTable: "true", artifactsDir: path.join(dir, "target", "lambda"), architecture: "arm64", artifactBuild: sha })[key] },
            "iops-ws",
            "test",
        );
        assert.deepEqual(checkedArtifact(s, "fanout"), { zip: path.join(dir, "target", "lambda", "fanout", `bootstrap-${sha}-arm64.zip`), build: sha });
    });

    it("marks a build from a modified work tree -dirty", () => {
        const { dir, sha } = repo("x86_64");
        fs.appendFileSync(path.join(dir, "scripts", "package.sh"), "\n");
        const r = record(dir, "x86_64");
        assert.equal(r.status, 0, r.stderr);
        assert.ok(fs.existsSync(path.join(dir, "target", "lambda", "fanout", `bootstrap-${sha}-dirty-x86_64.zip`)));
    });

    it("a manifest that says another architecture than the zip holds is caught by the program", () => {
        const { dir } = repo("x86_64");
        assert.equal(record(dir, "arm64").status, 0);
        const s = loadSettings({ get: (key) => ({ createMetricsTable: "true", artifactsDir: path.join(dir, "target", "lambda"), architecture: "arm64" })[key] }, "iops-ws", "test");
        assert.throws(() => checkedArtifact(s, "fanout"), /holds a x86_64 bootstrap but the stack's architecture is arm64/);
    });

    it("fails when a zip is missing, and refuses an unknown architecture", () => {
        const { dir } = repo("x86_64");
        fs.rmSync(path.join(dir, "target", "lambda", "message", "bootstrap.zip"));
        const r = record(dir, "x86_64");
        assert.equal(r.status, 1);
        assert.match(r.stdout, /message +missing/);
        assert.equal(record(dir, "riscv64").status, 2);
    });
});
