// The end-to-end canary (canary.ts): its settings and their errors, and, on Pulumi's mocks, a
// production-like stack (the metrics table owned elsewhere, authMode jwt with a secret under a
// customer-managed key, the canary's own settings): the function, what it may do, its schedule,
// and the alarm that pages when its heartbeat stops coming back.

import * as assert from "node:assert/strict";
import { before, describe, it } from "node:test";

import { canaryAlarmSpecs, canarySettings } from "../canary";
import { ConfigError, loadSettings } from "../config";
import { ACCOUNT, fakeArtifacts, grants, Program, REGION, runProgram } from "./harness";

const PREFIX = "iops-ws-blue";
const TABLE_ARN = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/iops-metrics`;
const STREAM_ARN = `${TABLE_ARN}/stream/2025-06-01T00:00:00.000`;
const SECRET_ARN = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:iops-ws/blue/jwt-a1B2c3`;
const KEY_ARN = `arn:aws:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
const FUNCTION_ARN = `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${PREFIX}-canary`;
const RULE_ARN = `arn:aws:events:${REGION}:${ACCOUNT}:rule/${PREFIX}-canary`;
const LOG_GROUP_ARN = `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:/aws/lambda/${PREFIX}-canary`;

const FUNCTION = "aws:lambda/function:Function";
const ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm";

const settingsOf = (values: Record<string, string>) => {
    const source = { get: (key: string) => values[key] };
    return { source, settings: loadSettings(source, "iops-ws", "test") };
};
const canaryOf = (values: Record<string, string>) => {
    const { source, settings } = settingsOf({ createMetricsTable: "true", ...values });
    return canarySettings(source, settings);
};

describe("canary settings", () => {
    it("defaults: on, a 20 s wait, 15 s latency threshold, 2 lost heartbeats, 128 MB", () => {
        assert.deepEqual(canaryOf({}), {
            timeoutMs: 20000,
            latencyMaxMs: 15000,
            failuresThreshold: 2,
            memoryMb: 128,
            liveVersion: undefined,
            paused: false,
        });
        assert.equal(canaryOf({ canaryTimeoutMs: "8000" })?.latencyMaxMs, 7000, "the default threshold stays below the wait");
    });

    it("canaryEnabled false turns it off; anything else but true is an error", () => {
        assert.equal(canaryOf({ canaryEnabled: "false" }), undefined);
        assert.notEqual(canaryOf({ canaryEnabled: "true" }), undefined);
        assert.throws(() => canaryOf({ canaryEnabled: "yes" }), ConfigError);
    });

    it("a threshold the latency cannot reach, or a wait past the minute, is refused", () => {
        assert.throws(() => canaryOf({ canaryTimeoutMs: "10000", canaryLatencyMaxMs: "10000" }), /canaryLatencyMaxMs \(10000\) must be below canaryTimeoutMs \(10000\)/);
        assert.throws(() => canaryOf({ canaryTimeoutMs: "30000" }), /canaryTimeoutMs=30000 must be between 5000 and 25000/);
        assert.throws(() => canaryOf({ canaryLiveVersion: "v3" }), /canaryLiveVersion="v3" is not an integer/);
    });

    it("authMode jwt needs the HS256 secret to sign with: a JWKS alone is an error unless the canary is off", () => {
        const jwks = { authMode: "jwt", authJwksUrl: "https://issuer.example.com/.well-known/jwks.json" };
        assert.throws(() => canaryOf(jwks), /signs its own token .* set authJwtSecretArn, or canaryEnabled false/);
        assert.equal(canaryOf({ ...jwks, canaryEnabled: "false" }), undefined);
        assert.notEqual(canaryOf({ ...jwks, authJwtSecretArn: SECRET_ARN }), undefined);
    });

    it("with broadcasts or deliveries off on purpose, silence is expected: the alarm does not count it", () => {
        const switches: Record<string, string>[] = [{ broadcastsEnabled: "false" }, { deliveriesEnabled: "false" }];
        for (const off of switches) {
            const { source, settings } = settingsOf({ createMetricsTable: "true", ...off });
            const canary = canarySettings(source, settings)!;
            assert.equal(canary.paused, true);
            const latency = canaryAlarmSpecs(settings, canary).find((s) => s.name === "canary-latency")!;
            assert.equal(latency.treatMissingData, "notBreaching");
        }
    });
});

let p: Program;
before(async () => {
    p = await runProgram(
        {
            artifactsDir: fakeArtifacts("x86_64", "0123456789ab"),
            metricsStreamArn: STREAM_ARN,
            stageName: "blue",
            authMode: "jwt",
            authJwtSecretArn: SECRET_ARN,
            authJwtSecretKmsKeyArn: KEY_ARN,
            authIssuer: "https://issuer.example.com",
            authAudience: "dashboards,ops",
            canaryTimeoutMs: "12000",
            canaryLatencyMaxMs: "8000",
            canaryFailuresThreshold: "3",
            canaryMemoryMb: "256",
            canaryLiveVersion: "4",
        },
        "blue",
    );
});

describe("the canary function", () => {
    it("runs the canary zip on provided.al2023, its timeout the handshake and the wait under the minute", () => {
        const f = p.one(FUNCTION, "canary").inputs;
        assert.equal(f.name, `${PREFIX}-canary`);
        assert.deepEqual([f.runtime, f.handler, f.architectures], ["provided.al2023", "bootstrap", ["x86_64"]]);
        assert.equal(f.description, `${PREFIX}-canary build 0123456789ab x86_64`);
        assert.deepEqual([f.memorySize, f.timeout], [256, 29]);
        assert.equal(f.publish, true);
        assert.equal(f.loggingConfig.logGroup, `/aws/lambda/${PREFIX}-canary`);
        assert.equal(p.one("aws:cloudwatch/logGroup:LogGroup", "canary").inputs.retentionInDays, 30);
        assert.equal(p.outputs.canaryFunctionName, `${PREFIX}-canary`);
    });

    it("connects to this stage and writes the table the processor's stream belongs to, signing with the authorizer's secret", () => {
        assert.deepEqual(p.one(FUNCTION, "canary").inputs.environment.variables, {
            RUST_LOG: "info",
            STAGE: "blue",
            CANARY_WS_URL: p.outputs.websocketUrl,
            METRICS_TABLE_NAME: "iops-metrics",
            CANARY_ENTITY_ID: "canary-heartbeat",
            CANARY_TIMEOUT_MS: "12000",
            AUTH_MODE: "jwt",
            // The ARN only: the value is read on every run, never configured.
            AUTH_JWT_SECRET_ARN: SECRET_ARN,
            AUTH_ISSUER: "https://issuer.example.com",
            AUTH_AUDIENCE: "dashboards,ops",
        });
        assert.match(p.outputs.websocketUrl, /^wss:\/\/.*\/blue$/);
    });

    it("may write its own heartbeat item and read the secret, nothing else", () => {
        assert.deepEqual(grants(p.statements("canary")), {
            "logs:CreateLogStream": [LOG_GROUP_ARN, `${LOG_GROUP_ARN}:*`],
            "logs:PutLogEvents": [LOG_GROUP_ARN, `${LOG_GROUP_ARN}:*`],
            "dynamodb:PutItem": [TABLE_ARN],
            "secretsmanager:GetSecretValue": [SECRET_ARN],
            "kms:Decrypt": [KEY_ARN],
        });
        const put = p.statements("canary").find((s: any) => s.Action.includes("dynamodb:PutItem")) as any;
        assert.deepEqual(put.Condition, { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": "canary-heartbeat" } });
        const assume = JSON.parse(p.one("aws:iam/role:Role", "canary").inputs.assumeRolePolicy);
        assert.deepEqual(assume.Statement[0].Principal, { Service: "lambda.amazonaws.com" });
    });

    it("runs every minute through its alias `live` (pinned here), without retries", () => {
        const alias = p.one("aws:lambda/alias:Alias", "canary").inputs;
        assert.deepEqual([alias.name, alias.functionVersion], ["live", "4"]);
        const rule = p.one("aws:cloudwatch/eventRule:EventRule", "canary").inputs;
        assert.deepEqual([rule.name, rule.scheduleExpression, rule.state], [`${PREFIX}-canary`, "rate(1 minute)", "ENABLED"]);
        const target = p.one("aws:cloudwatch/eventTarget:EventTarget", "canary").inputs;
        assert.equal(target.rule, `${PREFIX}-canary`);
        assert.equal(target.arn, `${FUNCTION_ARN}:live`);
        assert.deepEqual(target.retryPolicy, { maximumRetryAttempts: 0, maximumEventAgeInSeconds: 60 });
        const permission = p.one("aws:lambda/permission:Permission", "canary").inputs;
        assert.deepEqual(
            [permission.action, permission.function, permission.qualifier, permission.principal, permission.sourceArn],
            ["lambda:InvokeFunction", `${PREFIX}-canary`, "live", "events.amazonaws.com", RULE_ARN],
        );
        const invoke = p.one("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig", "canary").inputs;
        assert.deepEqual([invoke.qualifier, invoke.maximumRetryAttempts], ["live", 0]);
    });

    it("is created in order: log group and policy before the function, the permission before the schedule's target", () => {
        assert.ok(p.dependsOn([FUNCTION, "canary"], ["aws:cloudwatch/logGroup:LogGroup", "canary"]));
        assert.ok(p.dependsOn([FUNCTION, "canary"], ["aws:iam/rolePolicy:RolePolicy", "canary"]));
        assert.ok(p.dependsOn(["aws:cloudwatch/eventTarget:EventTarget", "canary"], ["aws:lambda/permission:Permission", "canary"]));
        assert.ok(p.dependsOn(["aws:lambda/permission:Permission", "canary"], ["aws:lambda/alias:Alias", "canary"]));
    });
});

describe("the canary's alarms", () => {
    const dimensions = { Service: "canary", Stage: "blue" };

    it("canary-latency: no heartbeat back for 3 minutes (missing data breaches), or the slowest over the threshold", () => {
        const a = p.one(ALARM, "canary-latency").inputs;
        assert.deepEqual(
            [a.namespace, a.metricName, a.dimensions, a.statistic, a.period, a.evaluationPeriods, a.datapointsToAlarm, a.threshold],
            ["IopsDashboard", "CanaryLatency", dimensions, "Maximum", 60, 3, 3, 8000],
        );
        assert.equal(a.treatMissingData, "breaching");
        assert.equal(a.name, `${PREFIX}-canary-latency`);
        assert.match(a.alarmDescription, /RUNBOOK\.md, section "canary-latency"/);
    });

    it("canary-failures: heartbeats lost while others arrive, over the configured count", () => {
        const a = p.one(ALARM, "canary-failures").inputs;
        assert.equal(a.threshold, 3);
        assert.equal(a.treatMissingData, "notBreaching");
        const inputs = a.metricQueries.filter((q: any) => q.metric).map((q: any) => [q.id, q.metric.metricName, q.metric.stat, q.metric.dimensions]);
        assert.deepEqual(inputs, [
            ["failed", "CanaryFailures", "Sum", dimensions],
            ["arrived", "CanaryLatency", "SampleCount", dimensions],
        ]);
    });

    it("both are on the dashboard with their metrics", () => {
        const body = JSON.parse(p.one("aws:cloudwatch/dashboard:Dashboard", "dashboard").inputs.dashboardBody);
        const titles = body.widgets.map((w: any) => w.properties.title);
        assert.ok(titles.includes("canary-latency") && titles.includes("canary-failures"));
        const rows = body.widgets.flatMap((w: any) => w.properties.metrics ?? []).filter((r: any[]) => r[3] === "canary");
        assert.deepEqual([...new Set(rows.map((r: any[]) => r[1]))].sort(), ["CanaryFailures", "CanaryLatency"]);
    });
});
