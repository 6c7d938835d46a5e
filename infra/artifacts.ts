// The Lambda zips `make package` builds (scripts/package.sh), checked before anything deploys:
// the `bootstrap` inside each zip must be an ELF executable for the stack's architecture, so an
// x86_64 build never reaches an arm64 stack (every invocation would fail with Runtime.InvalidEntrypoint).
//
// target/lambda/<fn>/bootstrap.zip                   the last build
// target/lambda/<fn>/bootstrap.json                  its manifest: {"function","arch","git",...}
// target/lambda/<fn>/bootstrap-<git>-<arch>.zip      a copy per commit and architecture (config
// target/lambda/<fn>/bootstrap-<git>-<arch>.json     `artifactBuild` deploys one)

import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";

import { Architecture, Settings } from "./config";

/** ELF e_machine values of the two Lambda architectures. */
export const ELF_MACHINE: Record<Architecture, number> = { x86_64: 0x3e, arm64: 0xb7 };

export class ArtifactError extends Error {}

/** The zip of `fn` (a FunctionName, or the canary) to deploy: `<fn>/bootstrap.zip`, or the per-commit copy config `artifactBuild` names. */
export function artifactPath(settings: Settings, fn: string): string {
    const file = settings.artifactBuild === undefined ? "bootstrap.zip" : `bootstrap-${settings.artifactBuild}-${settings.architecture}.zip`;
    return path.join(settings.artifactsDir, fn, file);
}

/** The manifest package.sh writes beside a zip (same name, `.json`). */
export interface Manifest {
    function?: string;
    arch?: string;
    git?: string;
}

export function readManifest(zipPath: string): Manifest | undefined {
    const file = zipPath.replace(/\.zip$/, ".json");
    if (!fs.existsSync(file)) return undefined;
    try {
        return JSON.parse(fs.readFileSync(file, "utf8")) as Manifest;
    } catch (e) {
        throw new ArtifactError(`${file} is not valid JSON (${(e as Error).message}): run \`make package\` again`);
    }
}

/** The first `length` bytes of the entry `name` of a zip archive (stored or deflated). */
export function zipEntryPrefix(zip: Buffer, name: string, length: number): Buffer {
    // End of central directory: signature, at least 22 bytes from the end, before a comment.
    const eocdSignature = 0x06054b50;
    let eocd = -1;
    for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
        if (zip.readUInt32LE(i) === eocdSignature) {
            eocd = i;
            break;
        }
    }
    if (eocd < 0) throw new ArtifactError("not a zip archive (no end of central directory)");
    const entries = zip.readUInt16LE(eocd + 10);
    let at = zip.readUInt32LE(eocd + 16);
    for (let n = 0; n < entries; n++) {
        if (at + 46 > zip.length || zip.readUInt32LE(at) !== 0x02014b50) throw new ArtifactError("corrupt zip central directory");
        const method = zip.readUInt16LE(at + 10);
        const compressedSize = zip.readUInt32LE(at + 20);
        const nameLength = zip.readUInt16LE(at + 28);
        const extraLength = zip.readUInt16LE(at + 30);
        const commentLength = zip.readUInt16LE(at + 32);
        const localHeader = zip.readUInt32LE(at + 42);
        const entryName = zip.toString("utf8", at + 46, at + 46 + nameLength);
        at += 46 + nameLength + extraLength + commentLength;
        if (entryName !== name) continue;

        if (zip.readUInt32LE(localHeader) !== 0x04034b50) throw new ArtifactError(`corrupt zip local header for ${name}`);
        const dataStart = localHeader + 30 + zip.readUInt16LE(localHeader + 26) + zip.readUInt16LE(localHeader + 28);
        const data = zip.subarray(dataStart, dataStart + compressedSize);
        if (method === 0) return data.subarray(0, length);
        if (method === 8) {
            // Only the start is needed: inflate a prefix, flushing what it yields.
            const prefix = zlib.inflateRawSync(data.subarray(0, Math.min(data.length, 64 * 1024)), {
                finishFlush: zlib.constants.Z_SYNC_FLUSH,
            });
            return prefix.subarray(0, length);
        }
        throw new ArtifactError(`${name} is compressed with method ${method}; only stored and deflate are read`);
    }
    throw new ArtifactError(`the archive has no ${name} at its root`);
}

/** The architecture of an ELF executable's header. */
export function elfArchitecture(header: Buffer): Architecture {
    if (header.length < 20 || header.readUInt32BE(0) !== 0x7f454c46) throw new ArtifactError("bootstrap is not an ELF executable");
    // EI_DATA (byte 5): 1 = little-endian, which both Lambda architectures are.
    const machine = header[5] === 2 ? header.readUInt16BE(18) : header.readUInt16LE(18);
    for (const [arch, value] of Object.entries(ELF_MACHINE) as [Architecture, number][]) {
        if (value === machine) return arch;
    }
    throw new ArtifactError(`bootstrap is an ELF executable for machine 0x${machine.toString(16)}, neither x86_64 (0x3e) nor aarch64 (0xb7)`);
}

/** The architecture the `bootstrap` in a Lambda zip was built for. */
export function zipArchitecture(zipPath: string): Architecture {
    try {
        return elfArchitecture(zipEntryPrefix(fs.readFileSync(zipPath), "bootstrap", 64));
    } catch (e) {
        if (e instanceof ArtifactError) throw new ArtifactError(`${zipPath}: ${e.message}`);
        throw e;
    }
}

/**
 * The zip of `fn` for this stack, after checking that it exists and that its bootstrap (and its
 * manifest, if any) are for the stack's architecture. Returns the zip's path and the build
 * (git commit) it was made from, when package.sh recorded one.
 */
export function checkedArtifact(settings: Settings, fn: string): { zip: string; build?: string } {
    const zip = artifactPath(settings, fn);
    const lambdaArch = settings.architecture;
    const rebuild = `run \`LAMBDA_ARCH=${lambdaArch} make package\``;
    if (!fs.existsSync(zip)) {
        throw new ArtifactError(`${zip} is missing: ${rebuild} first${settings.artifactBuild === undefined ? "" : ` at commit ${settings.artifactBuild}, or unset artifactBuild`}`);
    }
    const built = zipArchitecture(zip);
    if (built !== lambdaArch) {
        throw new ArtifactError(
            `${zip} holds a ${built} bootstrap but the stack's architecture is ${lambdaArch}: ${rebuild}, or \`pulumi config set architecture ${built}\` if the stack should run ${built}`,
        );
    }
    const manifest = readManifest(zip);
    if (manifest?.arch !== undefined && manifest.arch !== lambdaArch) {
        throw new ArtifactError(`${zip.replace(/\.zip$/, ".json")} says ${manifest.arch}, the stack is ${lambdaArch}: ${rebuild}`);
    }
    return { zip, build: manifest?.git };
}
