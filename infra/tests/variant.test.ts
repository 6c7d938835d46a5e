// A stack that sets everything the other way: the metrics table is owned elsewhere (only its
// stream ARN is configured), arm64, 8 buckets, another stage, an older 256 KiB queue, a longer
// fanout timeout, a rolled-back fanout, a quiet stream, authentication by a JWKS alone for clients
// that all send ?token= (so no canary: it has no secret to sign its token with), snapshots off, and
// an old index kept beside the new one while it replaces it. Each setting must reach the resource
// and the environment that use it.

import * as assert from "node:assert/strict";
import { before, describe, it } from "node:test";

import { ACCOUNT, API_ID, fakeArtifacts, FUNCTIONS, grants, Program, PUBLISHED_VERSION, REGION, runProgram } from "./harness";

const PREFIX = "iops-ws-staging";
const STREAM_ARN = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/iops-metrics/stream/2025-06-01T00:00:00.000`;
const EXECUTION_ARN = `arn:aws:execute-api:${REGION}:${ACCOUNT}:${API_ID}`;
const JWKS_URL = "https://issuer.example.com/.well-known/jwks.json";

let p: Program;
before(async () => {
    p = await runProgram(
        {
            artifactsDir: fakeArtifacts("arm64"),
            metricsStreamArn: STREAM_ARN,
            architecture: "arm64",
            connectionsTableName: "conns-staging",
            connectionsIndexName: "by-bucket",
            connectionsIndexPrevious: "connected-connectedAt-index",
            snapshotsEnabled: "false",
            snapshotCacheMs: "250",
            connectionBuckets: "8",
            connectionBucketsPrevious: "4",
            connectionTtlSeconds: "7200",
            stageName: "live",
            queueMaxMessageBytes: "262144",
            maxMessageBytes: "65536",
            fanoutShardSize: "500",
            queryPageSize: "250",
            processorSendConcurrency: "8",
            fanoutTimeoutSeconds: "120",
            fanoutConcurrency: "32",
            fanoutMaxAttempts: "7",
            fanoutBatchSize: "4",
            fanoutMaxReceiveCount: "3",
            logLevel: "debug,aws_smithy_runtime=info",
            logRetentionDays: "90",
            manageApiGatewayAccount: "true",
            iteratorAgeMaxMs: "120000",
            requeuedDeliveriesThreshold: "500",
            broadcastsEnabled: "false",
            deliveriesEnabled: "false",
            fanoutLiveVersion: "3",
            streamMaxRecordAgeSeconds: "3600",
            streamAlwaysActive: "false",
            expectedDashboards: "600000",
            pingIntervalSeconds: "120",
            routeThrottleHeadroom: "1.5",
            connectionsIndexProjection: "ALL",
            fanoutQueueAgeMaxSeconds: "900",
            failedDeliveriesPercent: "2.5",
            failedDeliveriesThreshold: "50",
            authMode: "jwt",
            authJwksUrl: JWKS_URL,
            authIdentitySources: "route.request.querystring.token",
            authorizerMemoryMb: "128",
            authorizerTimeoutSeconds: "10",
            authDeniedAlarmThreshold: "25",
            authorizerLiveVersion: "2",
            canaryEnabled: "false",
        },
        "staging",
    );
});

describe("an existing metrics table", () => {
    it("is not created; the processor reads the configured stream", () => {
        assert.deepEqual(
            p.all("aws:dynamodb/table:Table").map((t) => t.name).sort(),
            ["broadcast-state", "connections"],
        );
        const m = p.one("aws:lambda/eventSourceMapping:EventSourceMapping", "processor-stream").inputs;
        assert.equal(m.eventSourceArn, STREAM_ARN);
        const g = grants(p.statements("processor"));
        for (const action of ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"]) {
            assert.deepEqual(g[action], [STREAM_ARN]);
        }
        assert.equal(p.outputs.metricsTableName, undefined);
        assert.equal(p.outputs.metricsStreamArn, STREAM_ARN);
    });
});

describe("settings reach resources and environments", () => {
    it("arm64 and the log retention", () => {
        for (const fn of FUNCTIONS) {
            assert.deepEqual(p.one("aws:lambda/function:Function", fn).inputs.architectures, ["arm64"]);
            assert.equal(p.one("aws:cloudwatch/logGroup:LogGroup", fn).inputs.retentionInDays, 90);
        }
    });

    it("table, index, buckets, TTL", () => {
        const t = p.one("aws:dynamodb/table:Table", "connections").inputs;
        assert.equal(t.name, "conns-staging");
        // The new index, and the old one it replaces (keys only, as the seed's), kept until
        // connectionsIndexPrevious is removed.
        assert.deepEqual(
            t.globalSecondaryIndexes.map((i: any) => [i.name, i.projectionType, i.nonKeyAttributes]),
            [
                ["by-bucket", "ALL", undefined],
                ["connected-connectedAt-index", "KEYS_ONLY", undefined],
            ],
        );
        const tableArn = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/conns-staging`;
        // Both indexes (a processor still on the old name keeps paging), and the rounds' state table.
        assert.deepEqual(grants(p.statements("processor"))["dynamodb:Query"], [
            `${tableArn}/index/by-bucket`,
            `${tableArn}/index/connected-connectedAt-index`,
            `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${PREFIX}-broadcast-state`,
        ]);
        // Snapshots off: the message function has the registry's variables only, and neither
        // the state table nor the management API.
        for (const fn of ["connect", "disconnect", "message"]) {
            assert.deepEqual(p.one("aws:lambda/function:Function", fn).inputs.environment.variables, {
                RUST_LOG: "debug,aws_smithy_runtime=info",
                STAGE: "live",
                CONNECTIONS_TABLE_NAME: "conns-staging",
                CONNECTIONS_INDEX_NAME: "by-bucket",
                CONNECTION_BUCKETS: "8",
                CONNECTION_BUCKETS_PREVIOUS: "4",
                CONNECTION_TTL_SECONDS: "7200",
                CONNECTION_TOUCH_INTERVAL_SECONDS: "300",
            });
        }
        const message = grants(p.statements("message"));
        assert.deepEqual([message["dynamodb:Query"], message["execute-api:ManageConnections"]], [undefined, undefined]);
        for (const fn of ["processor", "fanout"]) {
            const env = p.one("aws:lambda/function:Function", fn).inputs.environment.variables;
            assert.equal(env.CONNECTIONS_INDEX_NAME, "by-bucket", fn);
            assert.equal(env.CONNECTION_BUCKETS, "8", fn);
            assert.equal(env.CONNECTION_TTL_SECONDS, "7200", fn);
            assert.equal(env.STAGE, "live", fn);
        }
    });

    it("the queue's maximum size is the processor's QUEUE_MAX_MESSAGE_BYTES", () => {
        const q = p.one("aws:sqs/queue:Queue", "fanout").inputs;
        assert.equal(q.maxMessageSize, 262144);
        assert.equal(JSON.parse(q.redrivePolicy).maxReceiveCount, 3);
        const env = p.one("aws:lambda/function:Function", "processor").inputs.environment.variables;
        assert.equal(env.QUEUE_MAX_MESSAGE_BYTES, "262144");
        assert.equal(env.MAX_MESSAGE_BYTES, "65536");
        assert.equal(env.FANOUT_SHARD_SIZE, "500");
        assert.equal(env.QUERY_PAGE_SIZE, "250");
        assert.equal(env.SEND_CONCURRENCY, "8");
        assert.equal(p.one("aws:lambda/function:Function", "fanout").inputs.environment.variables.QUEUE_MAX_MESSAGE_BYTES, "262144");
        assert.equal(env.CONNECTION_BUCKETS, "8");
    });

    it("the visibility timeout follows the fanout timeout", () => {
        assert.equal(p.one("aws:lambda/function:Function", "fanout").inputs.timeout, 120);
        assert.equal(p.one("aws:sqs/queue:Queue", "fanout").inputs.visibilityTimeoutSeconds, 720);
    });

    it("fanout: stage endpoint, concurrency, attempts, batch size; ManageConnections on the live stage", () => {
        const env = p.one("aws:lambda/function:Function", "fanout").inputs.environment.variables;
        assert.equal(env.WEBSOCKET_API_ENDPOINT, `https://${API_ID}.execute-api.${REGION}.amazonaws.com/live`);
        assert.equal(env.FANOUT_CONCURRENCY, "32");
        assert.equal(env.FANOUT_MAX_ATTEMPTS, "7");
        assert.equal(p.one("aws:lambda/eventSourceMapping:EventSourceMapping", "fanout-queue").inputs.batchSize, 4);
        assert.deepEqual(grants(p.statements("fanout"))["execute-api:ManageConnections"], [`${EXECUTION_ARN}/live/POST/@connections/*`]);
        assert.equal(p.outputs.websocketUrl, `wss://${API_ID}.execute-api.${REGION}.amazonaws.com/live`);
        for (const fn of ["connect", "disconnect", "message"]) {
            assert.match(p.one("aws:lambda/permission:Permission", fn).inputs.sourceArn, new RegExp(`^${EXECUTION_ARN}/live/\\$`));
        }
    });

    it("the account's API Gateway logging role, when this stack manages it, set before the stage", () => {
        const account = p.one("aws:apigateway/account:Account", "apigateway-account");
        assert.equal(account.inputs.cloudwatchRoleArn, `arn:aws:iam::${ACCOUNT}:role/${PREFIX}-apigateway-cloudwatch`);
        const attachment = p.one("aws:iam/rolePolicyAttachment:RolePolicyAttachment", "apigateway-cloudwatch");
        assert.equal(attachment.inputs.role, `${PREFIX}-apigateway-cloudwatch`);
        assert.equal(attachment.inputs.policyArn, "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs");
        // A fresh account's first stage fails without it: the stage waits for it, and it waits
        // for the role's policy.
        assert.ok(p.dependsOn(["aws:apigatewayv2/stage:Stage", "stage"], ["aws:apigateway/account:Account", "apigateway-account"]));
        assert.ok(p.dependsOn(["aws:apigateway/account:Account", "apigateway-account"], ["aws:iam/rolePolicyAttachment:RolePolicyAttachment", "apigateway-cloudwatch"]));
        // Every stack in the account logs through it: destroying this one must leave it.
        const role = p.one("aws:iam/role:Role", "apigateway-cloudwatch");
        for (const r of [account, attachment, role]) assert.equal(r.options.retainOnDelete, true, r.name);
    });

    it("a rolled-back function's alias stays on its pinned version; the others follow the new one", () => {
        for (const fn of FUNCTIONS) {
            const alias = p.one("aws:lambda/alias:Alias", fn).inputs;
            assert.equal(alias.functionVersion, fn === "fanout" ? "3" : PUBLISHED_VERSION, fn);
        }
    });

    it("the stream mapping's record age, and a quiet stream's iterator-age alarm", () => {
        assert.equal(p.one("aws:lambda/eventSourceMapping:EventSourceMapping", "processor-stream").inputs.maximumRecordAgeInSeconds, 3600);
        assert.equal(p.one("aws:cloudwatch/metricAlarm:MetricAlarm", "processor-iterator-age").inputs.treatMissingData, "notBreaching");
    });

    it("the $default throttle from the fleet: 600,000 / 120 s x 1.5", () => {
        const stage = p.one("aws:apigatewayv2/stage:Stage", "stage").inputs;
        assert.equal(stage.defaultRouteSettings.throttlingRateLimit, 7500);
        assert.equal(stage.defaultRouteSettings.throttlingBurstLimit, 5000);
    });

    it("broadcasts and deliveries can be switched off (RUNBOOK: Disable broadcasts)", () => {
        assert.equal(p.one("aws:lambda/eventSourceMapping:EventSourceMapping", "processor-stream").inputs.enabled, false);
        assert.equal(p.one("aws:lambda/eventSourceMapping:EventSourceMapping", "fanout-queue").inputs.enabled, false);
        // Rounds start from neither ticks nor the schedule, and round-stuck does not count the silence.
        assert.equal(p.one("aws:lambda/eventSourceMapping:EventSourceMapping", "processor-ticks").inputs.enabled, false);
        assert.equal(p.one("aws:cloudwatch/eventRule:EventRule", "processor-tick").inputs.state, "DISABLED");
        assert.equal(p.one("aws:cloudwatch/metricAlarm:MetricAlarm", "round-stuck").inputs.treatMissingData, "notBreaching");
    });

    it("a JWKS alone: no secret, so no Secrets Manager or KMS grant; the function reads only what is set", () => {
        assert.deepEqual(p.one("aws:lambda/function:Function", "authorizer").inputs.environment.variables, {
            RUST_LOG: "debug,aws_smithy_runtime=info",
            STAGE: "live",
            AUTH_MODE: "jwt",
            AUTH_JWKS_URL: JWKS_URL,
        });
        const granted = Object.keys(grants(p.statements("authorizer"))).sort();
        assert.deepEqual(granted, ["logs:CreateLogStream", "logs:PutLogEvents"]);
        const f = p.one("aws:lambda/function:Function", "authorizer").inputs;
        assert.deepEqual([f.memorySize, f.timeout, f.architectures], [128, 10, ["arm64"]]);
        assert.equal(p.one("aws:lambda/alias:Alias", "authorizer").inputs.functionVersion, "2");
    });

    it("clients that all send ?token=: that identity source, and the permission on this API's authorizers", () => {
        const a = p.one("aws:apigatewayv2/authorizer:Authorizer", "authorizer").inputs;
        assert.deepEqual(a.identitySources, ["route.request.querystring.token"]);
        assert.equal(p.one("aws:lambda/permission:Permission", "authorizer").inputs.sourceArn, `${EXECUTION_ARN}/authorizers/*`);
        const connect = p.one("aws:apigatewayv2/route:Route", "connect").inputs;
        assert.deepEqual([connect.authorizationType, connect.authorizerId], ["CUSTOM", "authorizer-id"]);
        assert.equal(p.one("aws:cloudwatch/metricAlarm:MetricAlarm", "authorizer-denials-surge").inputs.threshold, 25);
    });

    it("custom metrics in alarms and graphs carry this stack's stage", () => {
        const alarmsOn = p.all("aws:cloudwatch/metricAlarm:MetricAlarm").flatMap((a) =>
            a.inputs.metricQueries ? a.inputs.metricQueries.filter((q: any) => q.metric).map((q: any) => q.metric) : [a.inputs],
        );
        const own = alarmsOn.filter((m: any) => m.namespace === "IopsDashboard");
        assert.ok(own.length >= 6);
        for (const m of own) assert.deepEqual(m.dimensions, { Service: m.dimensions.Service, Stage: "live" }, m.metricName);
        assert.deepEqual([...new Set(own.map((m: any) => m.dimensions.Service))].sort(), ["authorizer", "fanout", "rounds"]);
        const body = JSON.parse(p.one("aws:cloudwatch/dashboard:Dashboard", "dashboard").inputs.dashboardBody);
        const rows = body.widgets.flatMap((w: any) => w.properties.metrics ?? []).filter((r: any[]) => r[0] === "IopsDashboard");
        assert.ok(rows.length >= 18);
        for (const r of rows) assert.deepEqual(r.slice(2, 6), ["Service", r[3], "Stage", "live"]);
    });

    it("alarm thresholds and names", () => {
        const failed = p.one("aws:cloudwatch/metricAlarm:MetricAlarm", "fanout-failed-deliveries").inputs;
        assert.equal(failed.threshold, 2.5);
        assert.equal(failed.metricQueries.find((q: any) => q.returnData).expression, "IF(f >= 50, 100 * f / (d + f), 0)");
        assert.equal(p.one("aws:cloudwatch/metricAlarm:MetricAlarm", "fanout-queue-age").inputs.threshold, 900);
        const age = p.one("aws:cloudwatch/metricAlarm:MetricAlarm", "processor-iterator-age").inputs;
        assert.equal(age.threshold, 120000);
        assert.equal(age.name, `${PREFIX}-processor-iterator-age`);
        assert.equal(p.one("aws:cloudwatch/metricAlarm:MetricAlarm", "fanout-requeued-deliveries").inputs.threshold, 500);
        assert.deepEqual(p.one("aws:cloudwatch/metricAlarm:MetricAlarm", "api-client-errors").inputs.dimensions, {
            ApiId: API_ID,
            Stage: "live",
        });
        assert.deepEqual(p.all("aws:sns/topicSubscription:TopicSubscription"), []);
    });

    it("canaryEnabled false: no canary function, schedule or alarm", () => {
        assert.ok(!p.all("aws:lambda/function:Function").some((f) => f.name === "canary"));
        assert.deepEqual(p.all("aws:cloudwatch/eventRule:EventRule").filter((r) => r.name === "canary"), []);
        assert.ok(!p.all("aws:cloudwatch/metricAlarm:MetricAlarm").some((a) => a.name.startsWith("canary-")));
        assert.equal(p.outputs.canaryFunctionName, undefined);
    });
});
