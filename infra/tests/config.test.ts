// Stack settings: defaults, and the errors a wrong value gets before anything is deployed.

import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { after, describe, it } from "node:test";

import { alarmSpecs } from "../alarms";
import { artifactPath } from "../artifacts";
import { ConfigError, loadSettings, Settings } from "../config";
import { lambdaLogLevel, rustFunction } from "../functions";

const STREAM_ARN = "arn:aws:dynamodb:us-east-1:123456789012:table/iops-metrics/stream/2025-06-01T00:00:00.000";

/** A production stack: it names its metrics source, as it must. */
const load = (values: Record<string, string> = {}): Settings =>
    loadSettings({ get: (key) => ({ metricsStreamArn: STREAM_ARN, ...values })[key] }, "iops-ws", "prod");
/** Exactly the given values, nothing added. */
const loadOnly = (values: Record<string, string>): Settings => loadSettings({ get: (key) => values[key] }, "iops-ws", "prod");
const configError = (message: RegExp) => (e: unknown) => e instanceof ConfigError && message.test(e.message);

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
            touchIntervalSeconds: 300,
            // What each connection receives rides in the index (tables.ts INDEX_ATTRIBUTES).
            indexProjection: "INCLUDE",
        });
        assert.deepEqual(s.snapshots, { enabled: true, cacheMs: 1000 });
        assert.deepEqual(s.metrics, { kind: "existing", streamArn: STREAM_ARN });
        assert.deepEqual(s.stream, { maxRecordAgeSeconds: 900, alwaysActive: true });
        assert.deepEqual(s.liveVersions, {});
        assert.equal(s.artifactBuild, undefined);
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
        ["both metrics sources", { createMetricsTable: "true" }, /not both/],
        ["a created table's name beside a stream ARN", { metricsTableName: "m" }, /metricsTableName .*createMetricsTable true/],
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
        ["a record age under Lambda's minimum", { streamMaxRecordAgeSeconds: "59" }, /streamMaxRecordAgeSeconds=59 must be between 60 and 86400/],
        ["a record age past the stream's 24 h", { streamMaxRecordAgeSeconds: "86401" }, /streamMaxRecordAgeSeconds/],
        ["an iterator age alarm that fires only after records are dropped", { streamMaxRecordAgeSeconds: "60", iteratorAgeMaxMs: "60000" }, /iteratorAgeMaxMs \(60000\) must be below streamMaxRecordAgeSeconds \(60 s\)/],
        ["a route throttle below the clients' heartbeat", { routeThrottleRate: "1000" }, /routeThrottleRate=1000 is below the clients' own heartbeat: 100000 dashboards pinging every 60 s send 1667 messages\/s/],
        ["a sized throttle over 100000/s", { expectedDashboards: "10000000", pingIntervalSeconds: "60" }, /above 100000\/s/],
        ["a headroom under 1", { routeThrottleHeadroom: "0.5" }, /routeThrottleHeadroom=0.5 must be between 1 and 10/],
        ["a headroom that is not a number", { routeThrottleHeadroom: "2x" }, /routeThrottleHeadroom="2x" is not a number/],
        ["a ping interval past the 10-minute idle timeout", { pingIntervalSeconds: "601" }, /pingIntervalSeconds/],
        ["a failure ratio over 100%", { failedDeliveriesPercent: "101" }, /failedDeliveriesPercent/],
        ["a live version 0", { fanoutLiveVersion: "0" }, /fanoutLiveVersion=0 must be between 1/],
        ["a live version that is not a number", { processorLiveVersion: "$LATEST" }, /processorLiveVersion="\$LATEST" is not an integer/],
        ["a build that is not a commit", { artifactBuild: "main" }, /artifactBuild="main" is not a git commit/],
        ["an index projection DynamoDB does not have", { connectionsIndexProjection: "SOME" }, /connectionsIndexProjection="SOME" must be one of INCLUDE, KEYS_ONLY, ALL/],
        ["a keys-only index with tokens that limit entity types", { connectionsIndexProjection: "KEYS_ONLY", authMode: "jwt", authJwksUrl: "https://example.com/jwks.json" }, /KEYS_ONLY with authMode jwt: .*move the index to INCLUDE first/],
        ["a previous index that is the index itself", { connectionsIndexPrevious: "connected-connectedAt-index" }, /connectionsIndexPrevious="connected-connectedAt-index" is connectionsIndexName itself/],
        ["a snapshot cache over a minute", { snapshotCacheMs: "60001" }, /snapshotCacheMs=60001 must be between 0 and 60000/],
        ["snapshots neither on nor off", { snapshotsEnabled: "yes" }, /snapshotsEnabled/],
    ];
    for (const [what, values, message] of rejected) {
        it(`reject ${what}`, () => {
            assert.throws(() => load(values), configError(message));
        });
    }
});

describe("authentication (authMode)", () => {
    const SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:iops-ws/prod/jwt-a1B2c3";
    const KEY_ARN = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
    const JWKS = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example/.well-known/jwks.json";
    const jwt = (values: Record<string, string>) => load({ authMode: "jwt", ...values });

    it("is off by default, with the denial alarm's threshold ready", () => {
        assert.deepEqual(load().auth, { mode: "none" });
        assert.equal(load().alarms.authDenied, 100);
    });

    it("jwt: a secret ARN and/or a JWKS, issuer, audiences and identity sources as lists, sized defaults", () => {
        assert.deepEqual(jwt({ authJwtSecretArn: SECRET_ARN }).auth, {
            mode: "jwt",
            secretArn: SECRET_ARN,
            secretKmsKeyArn: undefined,
            jwksUrl: undefined,
            issuer: undefined,
            audiences: [],
            identitySources: [],
            secretGeneration: undefined,
            memoryMb: 256,
            timeoutSeconds: 5,
        });
        const s = jwt({
            authJwksUrl: JWKS,
            authIssuer: "https://issuer.example",
            authAudience: "dashboards, ops,",
            authIdentitySources: " route.request.querystring.token ",
            authSecretGeneration: "7",
        }).auth;
        assert.ok(s.mode === "jwt");
        assert.deepEqual([s.jwksUrl, s.issuer, s.audiences, s.identitySources, s.secretGeneration], [JWKS, "https://issuer.example", ["dashboards", "ops"], ["route.request.querystring.token"], 7]);
    });

    it("authMode none, said explicitly, keeps the jwt settings unused (authentication turned off)", () => {
        assert.deepEqual(load({ authMode: "none", authJwtSecretArn: SECRET_ARN, authIssuer: "x" }).auth, { mode: "none" });
    });

    it("jwt without a key source is an error", () => {
        assert.throws(() => jwt({}), configError(/authMode jwt needs a key source: authJwtSecretArn .* and\/or authJwksUrl/));
        assert.throws(() => jwt({ authIssuer: "https://issuer.example" }), configError(/needs a key source/));
    });

    it("a secret value where the ARN goes is refused, and never echoed", () => {
        const value = "c2VjcmV0LXRoYXQtaXMtbG9uZy1lbm91Z2gtZm9yLWhzMjU2IQ==";
        const refused = (e: unknown) =>
            e instanceof ConfigError && /authJwtSecretArn is not an ARN/.test(e.message) && !e.message.includes(value) && !e.message.includes("c2VjcmV0");
        assert.throws(() => jwt({ authJwtSecretArn: value }), refused);
        // Also while authentication is off: the value is in the stack's config either way.
        assert.throws(() => load({ authMode: "none", authJwtSecretArn: value }), refused);
    });

    const rejectedAuth: [string, Record<string, string>, RegExp][] = [
        ["an unknown mode", { authMode: "oauth" }, /authMode="oauth" must be one of none, jwt/],
        ["a key source without authMode (an open $connect by mistake)", { authJwtSecretArn: SECRET_ARN }, /authJwtSecretArn is set but authMode is not: set authMode jwt/],
        ["a JWKS without authMode", { authJwksUrl: JWKS, authAudience: "a" }, /authJwksUrl, authAudience are set but authMode is not/],
        ["another service's ARN", { authMode: "jwt", authJwtSecretArn: "arn:aws:ssm:us-east-1:123456789012:parameter/jwt" }, /is not the complete ARN of a Secrets Manager secret/],
        ["a secret ARN without its suffix (IAM would not match it)", { authMode: "jwt", authJwtSecretArn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:jwt" }, /complete ARN .*describe-secret/],
        ["a KMS key without the secret", { authMode: "jwt", authJwksUrl: JWKS, authJwtSecretKmsKeyArn: KEY_ARN }, /set authJwtSecretArn too/],
        ["a KMS alias for the key", { authMode: "jwt", authJwtSecretArn: SECRET_ARN, authJwtSecretKmsKeyArn: "arn:aws:kms:us-east-1:123456789012:alias/jwt" }, /not a KMS key ARN/],
        ["a KMS key in another region", { authMode: "jwt", authJwtSecretArn: SECRET_ARN, authJwtSecretKmsKeyArn: KEY_ARN.replace("us-east-1", "eu-west-1") }, /is in eu-west-1, the secret in us-east-1/],
        ["a JWKS over plain http", { authMode: "jwt", authJwksUrl: "http://issuer.example/jwks.json" }, /authJwksUrl="http:\/\/issuer.example\/jwks.json" is not an https:\/\/ URL/],
        ["a JWKS URL that is not one", { authMode: "jwt", authJwksUrl: "issuer.example" }, /authJwksUrl/],
        ["an identity source API Gateway does not take", { authMode: "jwt", authJwksUrl: JWKS, authIdentitySources: "$request.querystring.token" }, /not a WebSocket identity source/],
        ["the query string and the subprotocol both required", { authMode: "jwt", authJwksUrl: JWKS, authIdentitySources: "route.request.querystring.token,route.request.header.Sec-WebSocket-Protocol" }, /requires every listed source/],
        ["a timeout shorter than the JWKS fetch", { authMode: "jwt", authJwksUrl: JWKS, authorizerTimeoutSeconds: "3" }, /authorizerTimeoutSeconds=3 must be between 4 and 29/],
        ["a timeout past API Gateway's 29 s", { authMode: "jwt", authJwksUrl: JWKS, authorizerTimeoutSeconds: "30" }, /authorizerTimeoutSeconds/],
        ["a negative secret generation", { authMode: "jwt", authJwksUrl: JWKS, authSecretGeneration: "-1" }, /authSecretGeneration/],
    ];
    for (const [what, values, message] of rejectedAuth) {
        it(`reject ${what}`, () => {
            assert.throws(() => load(values), configError(message));
        });
    }
});

describe("the metrics source", () => {
    it("must be named: a stack with neither a stream ARN nor createMetricsTable is a config error", () => {
        assert.throws(() => loadOnly({}), configError(/no metrics source: set metricsStreamArn .* or createMetricsTable true/));
    });

    it("is never an empty table created by default: a table name alone is an error too", () => {
        assert.throws(() => loadOnly({ metricsTableName: "m" }), configError(/createMetricsTable is not/));
        assert.throws(() => loadOnly({ createMetricsTable: "false" }), configError(/no metrics source/));
    });

    it("a demo stack creates its table when asked, named by default or by metricsTableName", () => {
        assert.deepEqual(loadOnly({ createMetricsTable: "true" }).metrics, { kind: "create", tableName: "iops-ws-prod-metrics" });
        assert.deepEqual(loadOnly({ createMetricsTable: "true", metricsTableName: "m" }).metrics, { kind: "create", tableName: "m" });
    });
});

describe("the $default route throttle", () => {
    it("is sized from the heartbeat: dashboards / ping interval x headroom", () => {
        const s = load();
        assert.deepEqual(s.api.heartbeat, { dashboards: 100000, pingIntervalSeconds: 60, messagesPerSecond: 1667, headroom: 2 });
        assert.equal(s.api.throttleRate, 3334);
        assert.ok(s.api.throttleRate > s.api.heartbeat.messagesPerSecond);
        assert.equal(s.api.throttleBurst, 3334);
    });

    it("follows the configured fleet and interval", () => {
        const s = load({ expectedDashboards: "1000000", pingIntervalSeconds: "300", routeThrottleHeadroom: "1.5" });
        assert.equal(s.api.heartbeat.messagesPerSecond, 3334);
        assert.equal(s.api.throttleRate, 5000);
        // The burst never exceeds the account's (5,000 by default).
        assert.equal(load({ expectedDashboards: "1000000", pingIntervalSeconds: "60" }).api.throttleBurst, 5000);
    });

    it("is never below 1000/s, and an explicit rate at or above the heartbeat wins", () => {
        assert.equal(load({ expectedDashboards: "100" }).api.throttleRate, 1000);
        assert.equal(load({ routeThrottleRate: "1667", routeThrottleBurst: "800" }).api.throttleRate, 1667);
        assert.equal(load({ routeThrottleRate: "1667", routeThrottleBurst: "800" }).api.throttleBurst, 800);
    });
});

describe("rollback settings", () => {
    it("pin each function's live alias to a version, and pick a per-commit build", () => {
        const s = load({ fanoutLiveVersion: "12", processorLiveVersion: "9", artifactBuild: "0123456789ab-dirty" });
        assert.deepEqual(s.liveVersions, { processor: 9, fanout: 12 });
        assert.equal(s.artifactBuild, "0123456789ab-dirty");
    });
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
        // The example stack is a demo: it creates its table, explicitly.
        assert.equal(values.createMetricsTable, "true");
        assert.deepEqual(s.metrics, { kind: "create", tableName: values.metricsTableName });
        // It authenticates, with a secret ARN that is plainly a placeholder (the example account).
        assert.equal(s.auth.mode, "jwt");
        assert.match(values.authJwtSecretArn, /^arn:aws:secretsmanager:[a-z0-9-]+:123456789012:secret:/);
        assert.match(yaml, /aws secretsmanager create-secret --name \S+ --secret-string "\$\(openssl rand -base64 48\)"/);
    });

    it("Pulumi.yaml refreshes before every update (plain `pulumi up` does not undo hand changes)", () => {
        const yaml = fs.readFileSync(path.join(__dirname, "..", "Pulumi.yaml"), "utf8");
        assert.match(yaml, /^options:\n(?: {2}#.*\n)* {2}refresh: always$/m);
    });
});

describe("artifacts", () => {
    it("are cargo-lambda's target/lambda/<fn>/bootstrap.zip, or package.sh's per-commit copy", () => {
        const s = load();
        assert.equal(artifactPath(s, "fanout"), path.join(s.artifactsDir, "fanout", "bootstrap.zip"));
        const pinned = load({ artifactBuild: "0123456789ab", architecture: "arm64" });
        assert.equal(artifactPath(pinned, "fanout"), path.join(pinned.artifactsDir, "fanout", "bootstrap-0123456789ab-arm64.zip"));
    });

    it("missing ones stop the program with the command that builds them, for the stack's architecture", () => {
        const empty = fs.mkdtempSync(path.join(os.tmpdir(), "iops-ws-empty-"));
        after(() => fs.rmSync(empty, { recursive: true, force: true }));
        const s = load({ artifactsDir: empty, architecture: "arm64" });
        assert.throws(
            () => rustFunction(s, { fn: "connect", memoryMb: 128, timeoutSeconds: 3, environment: {}, statements: () => [] }),
            /connect\/bootstrap\.zip is missing: run `LAMBDA_ARCH=arm64 make package`/,
        );
    });
});

describe("missing data on the processor's iterator age", () => {
    const missing = (values: Record<string, string>) =>
        alarmSpecs(load(values), { apiId: "a1b2c3d4e5", stageName: "prod" }).find((a) => a.name === "processor-iterator-age")?.treatMissingData;

    it("is an alarm on a stream that is always written: the mapping stopped", () => {
        assert.equal(missing({}), "breaching");
    });

    it("is quiet on a demo stack's idle stream, and while broadcasts are switched off on purpose", () => {
        assert.equal(missing({ streamAlwaysActive: "false" }), "notBreaching");
        assert.equal(missing({ broadcastsEnabled: "false" }), "notBreaching");
    });
});

describe("Lambda's application log level", () => {
    it("is the default level of the RUST_LOG setting, upper case", () => {
        assert.equal(lambdaLogLevel("info"), "INFO");
        assert.equal(lambdaLogLevel("debug,aws_smithy_runtime=warn"), "DEBUG");
        assert.equal(lambdaLogLevel("fanout=debug,warn"), "WARN");
        assert.equal(lambdaLogLevel("fanout=debug"), "INFO");
        assert.equal(lambdaLogLevel("loud"), "INFO");
    });
});

describe("the ping refresh interval", () => {
    it("is below the ttl, or the functions would refuse to start", () => {
        assert.throws(
            () => load({ connectionTtlSeconds: "300" }),
            configError(/connectionTtlSeconds=300 must be above connectionTouchIntervalSeconds=300/),
        );
        assert.equal(load().connections.touchIntervalSeconds, 300);
        assert.equal(load({ connectionTouchIntervalSeconds: "0", connectionTtlSeconds: "60" }).connections.touchIntervalSeconds, 0);
    });
});
