// Stack settings: defaults, and the errors a wrong value gets before anything is deployed.

import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";

import { ConfigError, loadSettings, Settings } from "../config";
import { artifactPath, rustFunction } from "../functions";

const load = (values: Record<string, string> = {}): Settings =>
    loadSettings({ get: (key) => values[key] }, "iops-ws", "prod");

describe("settings", () => {
    it("default to the seed and the Rust code's defaults", () => {
        const s = load();
        assert.equal(s.prefix, "iops-ws-prod");
        assert.equal(s.architecture, "x86_64");
        assert.deepEqual(s.connections, {
            tableName: "iops-dashboard-websocket-connections",
            indexName: "connected-connectedAt-index",
            buckets: 1,
            previousBuckets: 0,
            ttlSeconds: 86400,
        });
        assert.deepEqual(s.metrics, { kind: "create", tableName: "iops-ws-prod-metrics" });
        assert.equal(s.processor.shardSize, 1000);
        assert.equal(s.processor.maxMessageBytes, 131072);
        assert.equal(s.queue.maxMessageBytes, 1048576);
        assert.equal(s.fanout.concurrency, 64);
        assert.equal(s.fanout.maxAttempts, 5);
        assert.equal(s.logLevel, "info");
        assert.equal(s.api.stageName, "prod");
        assert.equal(s.artifactsDir, path.resolve(__dirname, "..", "..", "target", "lambda"));
    });

    it("set the visibility timeout to six fanout timeouts", () => {
        assert.equal(load({ fanoutTimeoutSeconds: "30" }).queue.visibilityTimeoutSeconds, 180);
        assert.equal(load({ fanoutTimeoutSeconds: "900" }).queue.visibilityTimeoutSeconds, 5400);
    });

    it("blank values count as unset", () => {
        assert.equal(load({ connectionBuckets: "  " }).connections.buckets, 1);
    });

    const rejected: [string, Record<string, string>, RegExp][] = [
        ["both metrics sources", { metricsTableName: "m", metricsStreamArn: "arn:aws:dynamodb:us-east-1:123456789012:table/m/stream/x" }, /not both/],
        ["a stream ARN that is not one", { metricsStreamArn: "arn:aws:dynamodb:us-east-1:123456789012:table/m" }, /metricsStreamArn/],
        ["0 buckets", { connectionBuckets: "0" }, /connectionBuckets=0 must be between 1 and 1000/],
        ["1001 buckets", { connectionBuckets: "1001" }, /connectionBuckets=1001/],
        ["a non-number", { connectionBuckets: "eight" }, /connectionBuckets="eight" is not an integer/],
        ["a TTL under a minute", { connectionTtlSeconds: "59" }, /connectionTtlSeconds/],
        ["maximum concurrency 1 (SQS mappings need 2..1000)", { fanoutMaxConcurrency: "1" }, /fanoutMaxConcurrency=1 must be between 2 and 1000/],
        ["maximum concurrency 1001", { fanoutMaxConcurrency: "1001" }, /fanoutMaxConcurrency/],
        ["a payload part over API Gateway's 128 KB", { maxMessageBytes: "131073" }, /maxMessageBytes/],
        ["a queue over SQS's 1 MiB", { queueMaxMessageBytes: "1048577" }, /queueMaxMessageBytes/],
        ["a queue without room for ids beside a part", { queueMaxMessageBytes: "132095" }, /at least maxMessageBytes \(131072\) \+ 1024/],
        ["more than 20 attempts", { fanoutMaxAttempts: "21" }, /fanoutMaxAttempts/],
        ["a fanout concurrency over 1000", { fanoutConcurrency: "1001" }, /fanoutConcurrency/],
        ["a shard over 20000 ids", { fanoutShardSize: "20001" }, /fanoutShardSize/],
        ["an SQS batch over 10", { fanoutBatchSize: "11" }, /fanoutBatchSize/],
        ["a retention CloudWatch does not offer", { logRetentionDays: "31" }, /logRetentionDays=31 must be one of/],
        ["another architecture", { architecture: "riscv64" }, /architecture/],
        ["a stage name with a dash", { stageName: "pre-prod" }, /stageName/],
        ["a boolean that is not one", { manageApiGatewayAccount: "yes" }, /manageApiGatewayAccount/],
    ];
    for (const [what, values, message] of rejected) {
        it(`reject ${what}`, () => {
            assert.throws(() => load(values), (e: unknown) => e instanceof ConfigError && message.test(e.message));
        });
    }
});

describe("the stack files", () => {
    const source = fs.readFileSync(path.join(__dirname, "..", "config.ts"), "utf8");
    const header = source.slice(0, source.indexOf("import "));
    const readKeys = [...source.matchAll(/\bc\.\w+(?:<[^>]*>)?\("(\w+)"/g)].map((m) => m[1]);

    it("config.ts documents every key it reads", () => {
        assert.ok(readKeys.length > 30);
        for (const key of readKeys) assert.match(header, new RegExp(`\\b${key}\\b`), `config.ts header lacks ${key}`);
    });

    it("Pulumi.dev.yaml sets only known keys, to valid values", () => {
        const yaml = fs.readFileSync(path.join(__dirname, "..", "Pulumi.dev.yaml"), "utf8");
        const values: Record<string, string> = {};
        for (const m of yaml.matchAll(/^ {2}iops-ws:(\w+): *"?([^"\n]*)"?$/gm)) values[m[1]] = m[2];
        assert.ok(Object.keys(values).length > 3);
        for (const key of Object.keys(values)) assert.ok(readKeys.includes(key), `unknown key iops-ws:${key}`);
        assert.match(yaml, /^ {2}aws:region: \S+$/m);
        const s = loadSettings({ get: (key) => values[key] }, "iops-ws", "dev");
        assert.deepEqual(s.metrics, { kind: "create", tableName: values.metricsTableName });
    });
});

describe("artifacts", () => {
    it("are cargo-lambda's target/lambda/<fn>/bootstrap.zip", () => {
        const s = load();
        assert.equal(artifactPath(s, "fanout"), path.join(s.artifactsDir, "fanout", "bootstrap.zip"));
    });

    it("missing ones stop the program with the command that builds them", () => {
        const empty = fs.mkdtempSync(path.join(os.tmpdir(), "iops-ws-empty-"));
        after(() => fs.rmSync(empty, { recursive: true, force: true }));
        const s = load({ artifactsDir: empty });
        assert.throws(
            () => rustFunction(s, { fn: "connect", memoryMb: 128, timeoutSeconds: 3, environment: {}, statements: () => [] }),
            /connect\/bootstrap\.zip is missing: run `make package`/,
        );
    });
});
