// Lambda zips for tests, built here: a real zip archive (deflated or stored, as `zip` and
// cargo-lambda write them) whose `bootstrap` starts with a real ELF header for an architecture.

import * as fs from "fs";
import * as path from "path";
import * as zlib from "zlib";

export const E_MACHINE = { x86_64: 0x3e, arm64: 0xb7, riscv: 0xf3 } as const;

/** The first bytes of a 64-bit little-endian ELF executable for `machine`, then padding. */
export function elfExecutable(machine: number, bodyBytes = 4096): Buffer {
    const header = Buffer.alloc(64 + bodyBytes, 0x90);
    header.writeUInt32BE(0x7f454c46, 0); // \x7fELF
    header[4] = 2; // ELFCLASS64
    header[5] = 1; // ELFDATA2LSB
    header[6] = 1; // EV_CURRENT
    header.fill(0, 7, 16);
    header.writeUInt16LE(2, 16); // ET_EXEC
    header.writeUInt16LE(machine, 18);
    header.writeUInt32LE(1, 20);
    return header;
}

export interface ZipEntry {
    name: string;
    data: Buffer;
    /** Deflate (8, the default) or store (0). */
    method?: 0 | 8;
}

/** A zip archive: local headers, data, central directory, end record. */
export function zipArchive(entries: ZipEntry[]): Buffer {
    const locals: Buffer[] = [];
    const centrals: Buffer[] = [];
    let offset = 0;
    for (const entry of entries) {
        const method = entry.method ?? 8;
        const body = method === 8 ? zlib.deflateRawSync(entry.data) : entry.data;
        const name = Buffer.from(entry.name, "utf8");
        const crc = zlib.crc32(entry.data);

        const local = Buffer.alloc(30);
        local.writeUInt32LE(0x04034b50, 0);
        local.writeUInt16LE(20, 4);
        local.writeUInt16LE(method, 8);
        local.writeUInt32LE(crc, 14);
        local.writeUInt32LE(body.length, 18);
        local.writeUInt32LE(entry.data.length, 22);
        local.writeUInt16LE(name.length, 26);
        locals.push(local, name, body);

        const central = Buffer.alloc(46);
        central.writeUInt32LE(0x02014b50, 0);
        central.writeUInt16LE(0x031e, 4); // made by: Unix
        central.writeUInt16LE(20, 6);
        central.writeUInt16LE(method, 10);
        central.writeUInt32LE(crc, 16);
        central.writeUInt32LE(body.length, 20);
        central.writeUInt32LE(entry.data.length, 24);
        central.writeUInt16LE(name.length, 28);
        central.writeUInt32LE((0o100755 << 16) >>> 0, 38); // -rwxr-xr-x
        central.writeUInt32LE(offset, 42);
        centrals.push(central, name);

        offset += local.length + name.length + body.length;
    }
    const directory = Buffer.concat(centrals);
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0);
    end.writeUInt16LE(entries.length, 8);
    end.writeUInt16LE(entries.length, 10);
    end.writeUInt32LE(directory.length, 12);
    end.writeUInt32LE(offset, 16);
    return Buffer.concat([...locals, directory, end]);
}

/** `<dir>/<fn>/<file>` holding a zip with a bootstrap for `arch`. */
export function writeLambdaZip(dir: string, fn: string, arch: keyof typeof E_MACHINE, file = "bootstrap.zip", method: 0 | 8 = 8): string {
    fs.mkdirSync(path.join(dir, fn), { recursive: true });
    const zip = path.join(dir, fn, file);
    fs.writeFileSync(zip, zipArchive([{ name: "bootstrap", data: elfExecutable(E_MACHINE[arch]), method }]));
    return zip;
}
