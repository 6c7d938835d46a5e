// The program with its defaults (stack `test`, a demo stack that creates the metrics table):
// every value the functions, the mappings and the on-call engineer rely on, and the order the
// engine creates things in, checked against Pulumi's mocks.

import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";

import { ACCOUNT, API_ID, fakeArtifacts, FUNCTIONS, grants, Program, PUBLISHED_VERSION, REGION, runProgram } from "./harness";

const PREFIX = "iops-ws-test";
const TABLE = "iops-dashboard-websocket-connections";
const TABLE_ARN = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${TABLE}`;
const INDEX = "connected-connectedAt-index";
const METRICS_STREAM_ARN = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${PREFIX}-metrics/stream/2026-01-01T00:00:00.000`;
const sqsArn = (name: string) => `arn:aws:sqs:${REGION}:${ACCOUNT}:${name}`;
const sqsUrl = (name: string) => `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/${name}`;
const FANOUT_QUEUE = `${PREFIX}-fanout`;
const FANOUT_DLQ = `${PREFIX}-fanout-dlq`;
const STREAM_DLQ = `${PREFIX}-stream-dlq`;
const TICK_QUEUE = `${PREFIX}-ticks`;
const STATE_TABLE_ARN = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${PREFIX}-broadcast-state`;
const ENDPOINT = `https://${API_ID}.execute-api.${REGION}.amazonaws.com/prod`;
const EXECUTION_ARN = `arn:aws:execute-api:${REGION}:${ACCOUNT}:${API_ID}`;
const TOPIC_ARN = `arn:aws:sns:${REGION}:${ACCOUNT}:${PREFIX}-alarms`;
const fnArn = (fn: string) => `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${PREFIX}-${fn}`;
const aliasArn = (fn: string) => `${fnArn(fn)}:live`;
const BUILD = "0123456789ab";
const logGroupArn = (fn: string) => `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:/aws/lambda/${PREFIX}-${fn}`;

const FUNCTION = "aws:lambda/function:Function";
const MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping";
const QUEUE = "aws:sqs/queue:Queue";
const ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm";
const TABLE_TYPE = "aws:dynamodb/table:Table";
const ALIAS = "aws:lambda/alias:Alias";

let p: Program;
before(async () => {
    const artifactsDir = fakeArtifacts("x86_64", BUILD);
    // authMode none (the default) deploys no authorizer, so it needs no authorizer zip either.
    fs.rmSync(path.join(artifactsDir, "authorizer"), { recursive: true });
    p = await runProgram({
        artifactsDir,
        createMetricsTable: "true",
        fanoutMaxConcurrency: "37",
        alarmEmail: "oncall@example.com",
    });
});

describe("connections table", () => {
    it("has the seed's key, the connected/connectedAt GSI, TTL on ttl, on-demand billing and PITR", () => {
        const t = p.one("aws:dynamodb/table:Table", "connections").inputs;
        assert.equal(t.name, TABLE);
        assert.equal(t.hashKey, "connectionId");
        assert.equal(t.rangeKey, undefined);
        assert.deepEqual(t.attributes, [
            { name: "connectionId", type: "S" },
            { name: "connected", type: "S" },
            { name: "connectedAt", type: "N" },
        ]);
        assert.deepEqual(t.globalSecondaryIndexes, [
            {
                name: INDEX,
                keySchemas: [
                    { attributeName: "connected", keyType: "HASH" },
                    { attributeName: "connectedAt", keyType: "RANGE" },
                ],
                // What each connection receives, paged without a read per connection.
                projectionType: "INCLUDE",
                nonKeyAttributes: ["entityTypes", "entityIds", "allowedEntityTypes"],
            },
        ]);
        assert.deepEqual(t.ttl, { attributeName: "ttl", enabled: true });
        assert.equal(t.billingMode, "PAY_PER_REQUEST");
        assert.deepEqual(t.pointInTimeRecovery, { enabled: true });
        assert.equal(t.streamEnabled, undefined);
    });

    it("is protected: deletion protection, and Pulumi neither deletes nor replaces it", () => {
        const t = p.one(TABLE_TYPE, "connections");
        assert.equal(t.inputs.deletionProtectionEnabled, true);
        assert.deepEqual([t.options.protect, t.options.retainOnDelete], [true, true]);
    });
});

describe("metrics table", () => {
    it("streams NEW_AND_OLD_IMAGES, keyed by entity_id", () => {
        const t = p.one("aws:dynamodb/table:Table", "metrics").inputs;
        assert.equal(t.name, `${PREFIX}-metrics`);
        assert.equal(t.hashKey, "entity_id");
        assert.deepEqual(t.attributes, [{ name: "entity_id", type: "S" }]);
        assert.equal(t.streamEnabled, true);
        assert.equal(t.streamViewType, "NEW_AND_OLD_IMAGES");
        assert.equal(p.outputs.metricsStreamArn, METRICS_STREAM_ARN);
    });

    it("is protected as the connections table is", () => {
        const t = p.one(TABLE_TYPE, "metrics");
        assert.equal(t.inputs.deletionProtectionEnabled, true);
        assert.deepEqual([t.options.protect, t.options.retainOnDelete], [true, true]);
    });
});

describe("event source mappings", () => {
    it("stream -> processor's live alias: batch 100, window 5 s, bisect, 3 retries, 15 min record age, on-failure DLQ", () => {
        const m = p.one(MAPPING, "processor-stream").inputs;
        assert.deepEqual(m, {
            functionName: aliasArn("processor"),
            eventSourceArn: METRICS_STREAM_ARN,
            startingPosition: "LATEST",
            batchSize: 100,
            maximumBatchingWindowInSeconds: 5,
            parallelizationFactor: 1,
            enabled: true,
            bisectBatchOnFunctionError: true,
            maximumRetryAttempts: 3,
            maximumRecordAgeInSeconds: 900,
            destinationConfig: { onFailure: { destinationArn: sqsArn(STREAM_DLQ) } },
            functionResponseTypes: ["ReportBatchItemFailures"],
        });
    });

    it("queue -> fanout's live alias: partial failures, maximum concurrency from config", () => {
        const m = p.one(MAPPING, "fanout-queue").inputs;
        assert.deepEqual(m, {
            functionName: aliasArn("fanout"),
            eventSourceArn: sqsArn(FANOUT_QUEUE),
            enabled: true,
            batchSize: 1,
            maximumBatchingWindowInSeconds: 0,
            functionResponseTypes: ["ReportBatchItemFailures"],
            scalingConfig: { maximumConcurrency: 37 },
        });
    });
});

describe("queues", () => {
    it("the fan-out queue: explicit 1 MiB maximum, visibility 6x the fanout timeout, redrive to its DLQ", () => {
        const q = p.one(QUEUE, "fanout").inputs;
        const fanoutTimeout = p.one(FUNCTION, "fanout").inputs.timeout;
        assert.equal(q.name, FANOUT_QUEUE);
        assert.equal(q.maxMessageSize, 1048576);
        assert.equal(fanoutTimeout, 60);
        assert.ok(q.visibilityTimeoutSeconds > fanoutTimeout);
        assert.equal(q.visibilityTimeoutSeconds, 360);
        assert.deepEqual(JSON.parse(q.redrivePolicy), { deadLetterTargetArn: sqsArn(FANOUT_DLQ), maxReceiveCount: 5 });
        assert.equal(q.sqsManagedSseEnabled, true);
    });

    it("the DLQs keep messages 14 days; only the fan-out queue may redrive into its DLQ", () => {
        for (const name of ["fanout-dlq", "stream-dlq"]) {
            assert.equal(p.one(QUEUE, name).inputs.messageRetentionSeconds, 14 * 86400);
        }
        assert.equal(p.one(QUEUE, "fanout-dlq").inputs.maxMessageSize, 1048576);
        const allow = p.one("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy", "fanout-dlq").inputs;
        assert.equal(allow.queueUrl, sqsUrl(FANOUT_DLQ));
        assert.deepEqual(JSON.parse(allow.redriveAllowPolicy), { redrivePermission: "byQueue", sourceQueueArns: [sqsArn(FANOUT_QUEUE)] });
    });
});

describe("functions", () => {
    it("run provided.al2023 x86_64 bootstrap, each with its own role and log group", () => {
        const roles = new Set<string>();
        for (const fn of FUNCTIONS) {
            const f = p.one(FUNCTION, fn).inputs;
            assert.equal(f.name, `${PREFIX}-${fn}`);
            assert.equal(f.runtime, "provided.al2023");
            assert.equal(f.handler, "bootstrap");
            assert.deepEqual(f.architectures, ["x86_64"]);
            assert.equal(f.role, `arn:aws:iam::${ACCOUNT}:role/${PREFIX}-${fn}`);
            assert.deepEqual(f.loggingConfig, {
                logFormat: "JSON",
                applicationLogLevel: "INFO",
                systemLogLevel: "INFO",
                logGroup: `/aws/lambda/${PREFIX}-${fn}`,
            });
            roles.add(f.role);
            // The commit of the zip (package.sh's manifest), so every version says what it runs.
            assert.equal(f.description, `${PREFIX}-${fn} build ${BUILD} x86_64`);
            const lg = p.one("aws:cloudwatch/logGroup:LogGroup", fn).inputs;
            assert.equal(lg.name, `/aws/lambda/${PREFIX}-${fn}`);
            assert.equal(lg.retentionInDays, 30);
        }
        assert.equal(roles.size, FUNCTIONS.length);
    });

    it("publish a version on every change, which the alias `live` points at", () => {
        for (const fn of FUNCTIONS) {
            assert.equal(p.one(FUNCTION, fn).inputs.publish, true, fn);
            const alias = p.one(ALIAS, fn).inputs;
            assert.equal(alias.name, "live");
            assert.equal(alias.functionName, `${PREFIX}-${fn}`);
            assert.equal(alias.functionVersion, PUBLISHED_VERSION);
        }
        assert.equal(p.outputs.liveAlias, "live");
    });

    it("every function's environment names the real table, index, queue, endpoint and stage", () => {
        const env = (fn: string) => p.one(FUNCTION, fn).inputs.environment.variables;
        const registry = {
            RUST_LOG: "info",
            // The `Stage` dimension of every EMF metric: the stage the alarms read.
            STAGE: "prod",
            CONNECTIONS_TABLE_NAME: TABLE,
            CONNECTIONS_INDEX_NAME: INDEX,
            CONNECTION_BUCKETS: "1",
            CONNECTION_BUCKETS_PREVIOUS: "0",
            CONNECTION_TTL_SECONDS: "86400",
            CONNECTION_TOUCH_INTERVAL_SECONDS: "300",
        };
        for (const fn of ["connect", "disconnect"]) assert.deepEqual(env(fn), registry);
        // message reads the registry's as well (snapshot/src/config.rs), and what snapshots need.
        assert.deepEqual(env("message"), {
            ...registry,
            WEBSOCKET_API_ENDPOINT: ENDPOINT,
            STATE_TABLE_NAME: `${PREFIX}-broadcast-state`,
            SNAPSHOT_CACHE_MS: "1000",
        });
        // processor and fanout read RegistryConfig as well (processor/src/config.rs, fanout/src/config.rs).
        assert.deepEqual(env("processor"), {
            ...registry,
            FANOUT_QUEUE_URL: sqsUrl(FANOUT_QUEUE),
            FANOUT_SHARD_SIZE: "1000",
            MAX_MESSAGE_BYTES: "131072",
            QUEUE_MAX_MESSAGE_BYTES: "1048576",
            QUERY_PAGE_SIZE: "0",
            SEND_CONCURRENCY: "4",
            // Rounds (rounds/src/settings.rs): the defaults, the state table and the tick queue.
            BROADCAST_MODE: "rounds",
            POST_BUDGET_PER_SECOND: "9000",
            ROUND_LEASE_SECONDS: "60",
            STATE_TABLE_NAME: `${PREFIX}-broadcast-state`,
            TICK_QUEUE_URL: sqsUrl(TICK_QUEUE),
        });
        assert.deepEqual(env("fanout"), {
            ...registry,
            WEBSOCKET_API_ENDPOINT: ENDPOINT,
            FANOUT_QUEUE_URL: sqsUrl(FANOUT_QUEUE),
            QUEUE_MAX_MESSAGE_BYTES: "1048576",
            FANOUT_CONCURRENCY: "64",
            FANOUT_MAX_ATTEMPTS: "5",
            POST_BUDGET_PER_SECOND: "9000",
            STATE_TABLE_NAME: `${PREFIX}-broadcast-state`,
            TICK_QUEUE_URL: sqsUrl(TICK_QUEUE),
        });
        // The values are the resources', not strings that happen to agree.
        for (const fn of ["processor", "fanout"]) {
            assert.equal(env(fn).QUEUE_MAX_MESSAGE_BYTES, String(p.one(QUEUE, "fanout").inputs.maxMessageSize));
        }
        assert.equal(env("fanout").FANOUT_QUEUE_URL, p.outputs.fanoutQueueUrl);
        assert.equal(env("connect").CONNECTIONS_TABLE_NAME, p.outputs.connectionsTableName);
        assert.equal(env("fanout").WEBSOCKET_API_ENDPOINT, p.outputs.managementEndpoint);
        assert.equal(env("message").WEBSOCKET_API_ENDPOINT, p.outputs.managementEndpoint);
        assert.equal(env("message").STATE_TABLE_NAME, p.outputs.broadcastStateTableName);
        for (const fn of FUNCTIONS) assert.equal(env(fn).STAGE, p.outputs.stageName, fn);
    });

    it("the canary writes its heartbeat to the metrics table this stack created (canary.test.ts has the rest)", () => {
        const env = p.one(FUNCTION, "canary").inputs.environment.variables;
        assert.equal(env.METRICS_TABLE_NAME, p.outputs.metricsTableName);
        assert.equal(env.CANARY_WS_URL, p.outputs.websocketUrl);
        assert.deepEqual(grants(p.statements("canary"))["dynamodb:PutItem"], [METRICS_STREAM_ARN.replace(/\/stream\/.*$/, "")]);
        assert.equal(env.AUTH_MODE, undefined, "authMode none: no token");
    });
});

describe("IAM", () => {
    const logs = (fn: string) => ({
        "logs:CreateLogStream": [logGroupArn(fn), `${logGroupArn(fn)}:*`],
        "logs:PutLogEvents": [logGroupArn(fn), `${logGroupArn(fn)}:*`],
    });
    const expected: Record<string, Record<string, string[]>> = {
        connect: { ...logs("connect"), "dynamodb:PutItem": [TABLE_ARN] },
        disconnect: { ...logs("disconnect"), "dynamodb:DeleteItem": [TABLE_ARN] },
        message: {
            ...logs("message"),
            // ping, subscribe, snapshot: the row; subscribe: its filter.
            "dynamodb:GetItem": [TABLE_ARN],
            "dynamodb:UpdateItem": [TABLE_ARN],
            // Snapshots: the state table's entities (only that partition: tests/rounds.test.ts),
            // posted to the connection that asked.
            "dynamodb:Query": [STATE_TABLE_ARN],
            "execute-api:ManageConnections": [`${EXECUTION_ARN}/prod/POST/@connections/*`],
        },
        processor: {
            ...logs("processor"),
            "dynamodb:Query": [`${TABLE_ARN}/index/${INDEX}`, STATE_TABLE_ARN],
            "dynamodb:DescribeStream": [METRICS_STREAM_ARN],
            "dynamodb:GetRecords": [METRICS_STREAM_ARN],
            "dynamodb:GetShardIterator": [METRICS_STREAM_ARN],
            "dynamodb:ListStreams": [METRICS_STREAM_ARN],
            "sqs:SendMessage": [sqsArn(FANOUT_QUEUE), sqsArn(STREAM_DLQ), sqsArn(TICK_QUEUE)],
            // Rounds: the broadcast state table (its own partitions only: tests/rounds.test.ts)
            // and the tick queue, which it sends to and its mapping polls.
            "dynamodb:GetItem": [STATE_TABLE_ARN],
            "dynamodb:PutItem": [STATE_TABLE_ARN],
            "dynamodb:UpdateItem": [STATE_TABLE_ARN],
            "dynamodb:DeleteItem": [STATE_TABLE_ARN],
            "sqs:ReceiveMessage": [sqsArn(TICK_QUEUE)],
            "sqs:DeleteMessage": [sqsArn(TICK_QUEUE)],
            "sqs:GetQueueAttributes": [sqsArn(TICK_QUEUE)],
        },
        fanout: {
            ...logs("fanout"),
            "sqs:ReceiveMessage": [sqsArn(FANOUT_QUEUE)],
            "sqs:DeleteMessage": [sqsArn(FANOUT_QUEUE)],
            "sqs:GetQueueAttributes": [sqsArn(FANOUT_QUEUE)],
            "sqs:SendMessage": [sqsArn(FANOUT_QUEUE), sqsArn(TICK_QUEUE)],
            // The posting budget's lanes, done jobs and the round's end (tests/rounds.test.ts).
            "dynamodb:PutItem": [STATE_TABLE_ARN],
            "dynamodb:UpdateItem": [STATE_TABLE_ARN],
            // Gone connections go in BatchWriteItem deletes (Registry::remove_many), never DeleteItem.
            "dynamodb:BatchWriteItem": [TABLE_ARN],
            "dynamodb:BatchGetItem": [TABLE_ARN],
            // PostToConnection only: nothing calls DeleteConnection.
            "execute-api:ManageConnections": [`${EXECUTION_ARN}/prod/POST/@connections/*`],
        },
    };

    for (const fn of FUNCTIONS) {
        it(`${fn}: exactly the actions its code calls, on exactly its resources`, () => {
            for (const e of Object.values(expected[fn])) e.sort();
            assert.deepEqual(grants(p.statements(fn)), expected[fn]);
        });
    }

    it("no wildcard action or resource anywhere, no managed policies, roles only Lambda assumes", () => {
        for (const fn of FUNCTIONS) {
            for (const s of p.statements(fn)) {
                for (const a of s.Action) assert.ok(!a.includes("*"), `${fn}: ${a}`);
                for (const r of s.Resource) {
                    assert.notEqual(r, "*", fn);
                    // The only wildcards are log streams of its own group and connection ids.
                    if (r.includes("*")) assert.match(r, /(:log-group:\/aws\/lambda\/[^*]+:\*|\/@connections\/\*)$/, r);
                }
            }
            const assume = JSON.parse(p.one("aws:iam/role:Role", fn).inputs.assumeRolePolicy);
            assert.deepEqual(assume.Statement, [
                { Effect: "Allow", Principal: { Service: "lambda.amazonaws.com" }, Action: "sts:AssumeRole" },
            ]);
        }
        assert.deepEqual(p.all("aws:iam/rolePolicyAttachment:RolePolicyAttachment"), []);
    });

    it("ManageConnections is granted to fanout and message (snapshots) only, on this stage's POST only", () => {
        for (const fn of FUNCTIONS) {
            const granted = grants(p.statements(fn))["execute-api:ManageConnections"];
            if (fn === "fanout" || fn === "message") {
                for (const arn of granted) assert.match(arn, new RegExp(`^${EXECUTION_ARN}/prod/POST/@connections/\\*$`));
                assert.equal(granted.length, 1);
            } else {
                assert.equal(granted, undefined, fn);
            }
        }
    });
});

describe("WebSocket API", () => {
    it("routes $connect, $disconnect and $default to their functions' live aliases through Lambda proxy integrations", () => {
        const api = p.one("aws:apigatewayv2/api:Api", "websocket").inputs;
        assert.equal(api.protocolType, "WEBSOCKET");
        assert.equal(api.routeSelectionExpression, "$request.body.action");
        const routes: Record<string, string> = { $connect: "connect", $disconnect: "disconnect", $default: "message" };
        for (const [routeKey, fn] of Object.entries(routes)) {
            const route = p.one("aws:apigatewayv2/route:Route", fn).inputs;
            assert.equal(route.apiId, API_ID);
            assert.equal(route.routeKey, routeKey);
            assert.equal(route.target, `integrations/${fn}-id`);
            const integration = p.one("aws:apigatewayv2/integration:Integration", fn).inputs;
            assert.equal(integration.integrationType, "AWS_PROXY");
            assert.equal(integration.integrationMethod, "POST");
            assert.equal(
                integration.integrationUri,
                `arn:aws:apigateway:${REGION}:lambda:path/2015-03-31/functions/${aliasArn(fn)}/invocations`,
            );
            const permission = p.one("aws:lambda/permission:Permission", fn).inputs;
            assert.equal(permission.action, "lambda:InvokeFunction");
            assert.equal(permission.function, `${PREFIX}-${fn}`);
            // The resource policy is on the alias API Gateway invokes.
            assert.equal(permission.qualifier, "live");
            assert.equal(permission.principal, "apigateway.amazonaws.com");
            assert.equal(permission.sourceArn, `${EXECUTION_ARN}/prod/${routeKey}`);
        }
        assert.equal(p.all("aws:apigatewayv2/route:Route").length, 3);
    });

    it("$default is a two-way route, so the message function's replies reach the client", () => {
        assert.equal(p.one("aws:apigatewayv2/route:Route", "message").inputs.routeResponseSelectionExpression, "$default");
        assert.equal(p.one("aws:apigatewayv2/route:Route", "connect").inputs.routeResponseSelectionExpression, undefined);
        const response = p.one("aws:apigatewayv2/routeResponse:RouteResponse", "message").inputs;
        assert.deepEqual(response, { apiId: API_ID, routeId: "message-id", routeResponseKey: "$default" });
    });

    it("the stage logs (access and execution) and throttles routes", () => {
        const stage = p.one("aws:apigatewayv2/stage:Stage", "stage").inputs;
        assert.equal(stage.name, "prod");
        assert.equal(stage.autoDeploy, true);
        // Sized from the heartbeat: 100,000 dashboards / 60 s x 2 headroom = 3,334/s.
        assert.deepEqual(stage.defaultRouteSettings, {
            throttlingRateLimit: 3334,
            throttlingBurstLimit: 3334,
            loggingLevel: "ERROR",
            dataTraceEnabled: false,
            detailedMetricsEnabled: true,
        });
        assert.equal(stage.routeSettings.length, 1);
        assert.equal(stage.routeSettings[0].routeKey, "$connect");
        assert.equal(stage.routeSettings[0].throttlingRateLimit, 500);
        assert.equal(stage.routeSettings[0].throttlingBurstLimit, 500);
        const access = p.one("aws:cloudwatch/logGroup:LogGroup", "api-access").inputs;
        assert.equal(stage.accessLogSettings.destinationArn, `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:${access.name}`);
        const format = JSON.parse(stage.accessLogSettings.format);
        assert.equal(format.connectionId, "$context.connectionId");
        assert.equal(format.status, "$context.status");
        assert.equal(access.retentionInDays, 30);
        const execution = p.one("aws:cloudwatch/logGroup:LogGroup", "api-execution").inputs;
        assert.equal(execution.name, `API-Gateway-Execution-Logs_${API_ID}/prod`);
        assert.equal(execution.retentionInDays, 30);
        // Not managed unless asked: the account's API Gateway role is shared by every stack.
        assert.deepEqual(p.all("aws:apigateway/account:Account"), []);
    });
});

describe("authentication off (authMode none, the default)", () => {
    it("there is no authorizer: no API Gateway authorizer, no function, alias, role, log group or permission for it", () => {
        assert.deepEqual(p.all("aws:apigatewayv2/authorizer:Authorizer"), []);
        for (const type of [FUNCTION, ALIAS, "aws:iam/role:Role", "aws:cloudwatch/logGroup:LogGroup", "aws:lambda/permission:Permission"]) {
            assert.deepEqual(p.all(type).filter((r) => r.name === "authorizer"), [], type);
        }
        assert.deepEqual(p.outputs.functionNames.authorizer, undefined);
        assert.equal(p.outputs.authMode, "none");
        assert.equal(p.outputs.authorizerId, undefined);
    });

    it("$connect is open, as in the seed: authorizationType NONE, no authorizer id", () => {
        const connect = p.one("aws:apigatewayv2/route:Route", "connect").inputs;
        assert.equal(connect.authorizationType, "NONE");
        assert.equal(connect.authorizerId, undefined);
    });

    it("no function reads an AUTH_ variable, no alarm or graph watches an authorizer", () => {
        for (const fn of FUNCTIONS) {
            const names = Object.keys(p.one(FUNCTION, fn).inputs.environment.variables);
            assert.deepEqual(names.filter((n) => n.startsWith("AUTH_")), [], fn);
        }
        assert.deepEqual(p.all(ALARM).filter((a) => a.name.startsWith("authorizer-")), []);
        const body = p.one("aws:cloudwatch/dashboard:Dashboard", "dashboard").inputs.dashboardBody;
        assert.ok(!body.includes('"authorizer"'), "the dashboard graphs authorizer metrics");
    });
});

describe("alarms", () => {
    // [namespace, metric, dimensions, stat, period, evaluations, threshold, treatMissingData]
    type Expected = [string, string, Record<string, string>, string, number, number, number, string];
    const lambda = (fn: string) => ({ FunctionName: `${PREFIX}-${fn}` });
    const api = { ApiId: API_ID, Stage: "prod" };
    // Every custom metric carries both catalogue dimensions: the service and this stack's stage.
    const fanout = { Service: "fanout", Stage: "prod" };
    const canary = { Service: "canary", Stage: "prod" };
    const rounds = { Service: "rounds", Stage: "prod" };
    const expected: Record<string, Expected> = {
        // The test stack's stream is always written (streamAlwaysActive defaults to true): no
        // invocation for 5 minutes is a stopped pipeline.
        "processor-iterator-age": ["AWS/Lambda", "IteratorAge", lambda("processor"), "Maximum", 60, 5, 60000, "breaching"],
        // An untouched queue stops reporting while messages sit in it: keep the state.
        "stream-dlq-depth": ["AWS/SQS", "ApproximateNumberOfMessagesVisible", { QueueName: STREAM_DLQ }, "Maximum", 60, 1, 0, "ignore"],
        "stream-dlq-growth": ["AWS/SQS", "NumberOfMessagesSent", { QueueName: STREAM_DLQ }, "Sum", 300, 1, 0, "notBreaching"],
        "fanout-dlq-depth": ["AWS/SQS", "ApproximateNumberOfMessagesVisible", { QueueName: FANOUT_DLQ }, "Maximum", 60, 1, 0, "ignore"],
        "fanout-queue-age": ["AWS/SQS", "ApproximateAgeOfOldestMessage", { QueueName: FANOUT_QUEUE }, "Maximum", 60, 5, 300, "ignore"],
        "fanout-requeued-deliveries": ["IopsDashboard", "Requeued", fanout, "Sum", 300, 3, 10000, "notBreaching"],
        "fanout-delivery-latency": ["IopsDashboard", "DeliveryLatency", fanout, "p99", 300, 3, 60000, "notBreaching"],
        "fanout-forbidden": ["IopsDashboard", "Forbidden", fanout, "Sum", 300, 1, 0, "notBreaching"],
        "fanout-payload-too-large": ["IopsDashboard", "PayloadTooLarge", fanout, "Sum", 300, 1, 0, "notBreaching"],
        "api-integration-errors": ["AWS/ApiGateway", "IntegrationError", api, "Sum", 300, 1, 10, "notBreaching"],
        "api-execution-errors": ["AWS/ApiGateway", "ExecutionError", api, "Sum", 300, 1, 0, "notBreaching"],
        "api-client-errors": ["AWS/ApiGateway", "ClientError", api, "Sum", 300, 1, 100, "notBreaching"],
        // The canary's latency exists only for a heartbeat that came back: no data is silence.
        "canary-latency": ["IopsDashboard", "CanaryLatency", canary, "Maximum", 60, 3, 15000, "breaching"],
        // The schedule reports RoundAge every minute: no data is a broken safety net.
        "round-stuck": ["IopsDashboard", "RoundAge", rounds, "Maximum", 60, 2, 300000, "breaching"],
        // Staleness exists only for rounds that ended: a quiet system has none.
        "staleness-high": ["IopsDashboard", "Staleness", rounds, "Maximum", 60, 3, 60000, "notBreaching"],
        "rounds-expired": ["IopsDashboard", "RoundsExpired", rounds, "Sum", 300, 1, 0, "notBreaching"],
    };
    for (const fn of FUNCTIONS) {
        expected[`${fn}-errors`] = ["AWS/Lambda", "Errors", lambda(fn), "Sum", 300, 1, 0, "notBreaching"];
        expected[`${fn}-throttles`] = ["AWS/Lambda", "Throttles", lambda(fn), "Sum", 300, 1, 0, "notBreaching"];
    }
    // Metric-math alarms: their inputs (id -> [namespace, metric, dimensions, stat]), the
    // alarmed expression, period, evaluations, threshold and treatMissingData.
    type Input = [string, string, Record<string, string>, string];
    type ExpectedMath = { inputs: Record<string, Input>; steps: Record<string, string>; expression: string; period: number; evaluations: number; threshold: number; missing: string };
    const math: Record<string, ExpectedMath> = {
        // Growth of what the DLQ holds (visible + in flight), 5 minutes over the previous 5.
        "fanout-dlq-growth": {
            inputs: {
                visible: ["AWS/SQS", "ApproximateNumberOfMessagesVisible", { QueueName: FANOUT_DLQ }, "Maximum"],
                inflight: ["AWS/SQS", "ApproximateNumberOfMessagesNotVisible", { QueueName: FANOUT_DLQ }, "Maximum"],
            },
            steps: { total: "visible + inflight" },
            expression: "DIFF(total)",
            period: 300,
            evaluations: 1,
            threshold: 0,
            missing: "notBreaching",
        },
        // Failed as a share of attempted deliveries, in %, from at least 10 failures (the defaults).
        "fanout-failed-deliveries": {
            inputs: { failed: ["IopsDashboard", "Failed", fanout, "Sum"], delivered: ["IopsDashboard", "Delivered", fanout, "Sum"] },
            steps: { f: "FILL(failed, 0)", d: "FILL(delivered, 0)" },
            expression: "IF(f >= 10, 100 * f / (d + f), 0)",
            period: 300,
            evaluations: 1,
            threshold: 1,
            missing: "notBreaching",
        },
        // Heartbeats lost in 15 minutes, counted only while others arrive (intermittent loss).
        "canary-failures": {
            inputs: { failed: ["IopsDashboard", "CanaryFailures", canary, "Sum"], arrived: ["IopsDashboard", "CanaryLatency", canary, "SampleCount"] },
            steps: { f: "FILL(failed, 0)", a: "FILL(arrived, 0)" },
            expression: "IF(a > 0, f, 0)",
            period: 900,
            evaluations: 1,
            threshold: 2,
            missing: "notBreaching",
        },
    };

    it("exactly these alarms exist", () => {
        assert.deepEqual(p.all(ALARM).map((a) => a.name).sort(), [...Object.keys(expected), ...Object.keys(math)].sort());
    });

    const common = (name: string, a: Record<string, any>, evaluations: number, threshold: number, missing: string) => {
        assert.equal(a.name, `${PREFIX}-${name}`);
        assert.equal(a.evaluationPeriods, evaluations);
        assert.equal(a.datapointsToAlarm, evaluations);
        assert.equal(a.threshold, threshold);
        assert.equal(a.comparisonOperator, "GreaterThanThreshold");
        assert.equal(a.treatMissingData, missing);
        assert.deepEqual(a.alarmActions, [TOPIC_ARN]);
        assert.deepEqual(a.okActions, [TOPIC_ARN]);
        assert.match(a.alarmDescription, new RegExp(`RUNBOOK\\.md, section "${name}"`));
    };

    for (const [name, [namespace, metric, dimensions, stat, period, evaluations, threshold, missing]] of Object.entries(expected)) {
        it(`${name}: ${namespace} ${metric} ${stat} > ${threshold}, missing data ${missing}, to the SNS topic`, () => {
            const a = p.one(ALARM, name).inputs;
            common(name, a, evaluations, threshold, missing);
            assert.equal(a.namespace, namespace);
            assert.equal(a.metricName, metric);
            assert.deepEqual(a.dimensions, dimensions);
            if (stat.startsWith("p")) {
                assert.equal(a.extendedStatistic, stat);
                assert.equal(a.statistic, undefined);
            } else {
                assert.equal(a.statistic, stat);
                assert.equal(a.extendedStatistic, undefined);
            }
            assert.equal(a.period, period);
            assert.equal(a.metricQueries, undefined);
        });
    }

    for (const [name, m] of Object.entries(math)) {
        it(`${name}: ${m.expression} > ${m.threshold}, missing data ${m.missing}, to the SNS topic`, () => {
            const a = p.one(ALARM, name).inputs;
            common(name, a, m.evaluations, m.threshold, m.missing);
            for (const key of ["namespace", "metricName", "dimensions", "statistic", "extendedStatistic", "period"]) {
                assert.equal(a[key], undefined, `${name}: ${key} beside metricQueries`);
            }
            const queries: any[] = a.metricQueries;
            const inputs = Object.fromEntries(
                queries.filter((q) => q.metric).map((q) => {
                    assert.equal(q.returnData, false);
                    assert.equal(q.metric.period, m.period);
                    return [q.id, [q.metric.namespace, q.metric.metricName, q.metric.dimensions, q.metric.stat]];
                }),
            );
            assert.deepEqual(inputs, m.inputs);
            const expressions = queries.filter((q) => q.expression);
            assert.deepEqual(
                Object.fromEntries(expressions.filter((q) => !q.returnData).map((q) => [q.id, q.expression])),
                m.steps,
            );
            const alarmed = expressions.filter((q) => q.returnData);
            assert.equal(alarmed.length, 1, "exactly one query returns data");
            assert.equal(alarmed[0].expression, m.expression);
        });
    }

    it("the topic mails the configured address", () => {
        assert.equal(p.one("aws:sns/topic:Topic", "alarms").inputs.name, `${PREFIX}-alarms`);
        const sub = p.one("aws:sns/topicSubscription:TopicSubscription", "alarms-email").inputs;
        assert.deepEqual(sub, { topic: TOPIC_ARN, protocol: "email", endpoint: "oncall@example.com" });
    });
});

describe("dashboard", () => {
    it("graphs every alarm's metric (or metric math) with its statistic and threshold", () => {
        const body = JSON.parse(p.one("aws:cloudwatch/dashboard:Dashboard", "dashboard").inputs.dashboardBody);
        const widgets: any[] = body.widgets;
        for (const alarm of p.all(ALARM)) {
            const a = alarm.inputs;
            const w = widgets.find((x) => x.properties.title === alarm.name);
            assert.ok(w, `no widget for ${alarm.name}`);
            assert.equal(w.properties.region, REGION);
            assert.deepEqual(w.properties.annotations.horizontal.map((h: any) => h.value), [a.threshold]);
            const rows: any[][] = w.properties.metrics;
            if (a.metricQueries === undefined) {
                assert.equal(w.properties.stat, a.statistic ?? a.extendedStatistic);
                assert.equal(w.properties.period, a.period);
                const dims = Object.entries(a.dimensions as Record<string, string>).flat();
                assert.deepEqual(rows[0].slice(0, -1), [a.namespace, a.metricName, ...dims]);
                continue;
            }
            // The inputs drawn hidden, each with its own statistic; the expression drawn.
            for (const q of a.metricQueries as any[]) {
                if (q.metric) {
                    const row = rows.find((r) => r[r.length - 1].id === q.id);
                    assert.ok(row, `${alarm.name}: no row ${q.id}`);
                    const dims = Object.entries(q.metric.dimensions as Record<string, string>).flat();
                    assert.deepEqual(row.slice(0, -1), [q.metric.namespace, q.metric.metricName, ...dims]);
                    assert.deepEqual(row[row.length - 1], { id: q.id, stat: q.metric.stat, visible: false });
                    assert.equal(w.properties.period, q.metric.period);
                } else {
                    const row = rows.find((r) => r.length === 1 && r[0].id === (q.returnData ? "alarmed" : q.id));
                    assert.ok(row, `${alarm.name}: no expression ${q.id}`);
                    assert.equal(row[0].expression, q.expression);
                }
            }
        }
        for (const w of widgets) {
            if (w.type === "metric") assert.ok(w.x + w.width <= 24, "widget inside the 24-column grid");
        }
    });
});

describe("creation order (what the engine waits for)", () => {
    const STAGE = ["aws:apigatewayv2/stage:Stage", "stage"] as [string, string];
    it("the stage is deployed after every route, so its first deployment has them all", () => {
        for (const route of ["connect", "disconnect", "message"]) {
            assert.ok(p.dependsOn(STAGE, ["aws:apigatewayv2/route:Route", route]), `stage before route ${route}`);
        }
    });

    it("the stage waits for its log groups", () => {
        for (const lg of ["api-access", "api-execution"]) {
            assert.ok(p.dependsOn(STAGE, ["aws:cloudwatch/logGroup:LogGroup", lg]), lg);
        }
    });

    it("each mapping is created after its function's role policy (Lambda validates the role then)", () => {
        assert.ok(p.dependsOn([MAPPING, "processor-stream"], ["aws:iam/rolePolicy:RolePolicy", "processor"]));
        assert.ok(p.dependsOn([MAPPING, "fanout-queue"], ["aws:iam/rolePolicy:RolePolicy", "fanout"]));
        // ... and invokes the alias, which therefore exists first.
        assert.ok(p.dependsOn([MAPPING, "processor-stream"], [ALIAS, "processor"]));
        assert.ok(p.dependsOn([MAPPING, "fanout-queue"], [ALIAS, "fanout"]));
    });

    it("each function is created after its log group and its role policy", () => {
        for (const fn of FUNCTIONS) {
            assert.ok(p.dependsOn([FUNCTION, fn], ["aws:cloudwatch/logGroup:LogGroup", fn]), `${fn} log group`);
            assert.ok(p.dependsOn([FUNCTION, fn], ["aws:iam/rolePolicy:RolePolicy", fn]), `${fn} policy`);
        }
    });

    it("an integration points at an alias only once API Gateway may invoke it", () => {
        for (const fn of ["connect", "disconnect", "message"]) {
            const integration = ["aws:apigatewayv2/integration:Integration", fn] as [string, string];
            assert.ok(p.dependsOn(integration, ["aws:lambda/permission:Permission", fn]), fn);
            assert.ok(p.dependsOn(["aws:lambda/permission:Permission", fn], [ALIAS, fn]), fn);
        }
    });
});

describe("outputs", () => {
    it("give clients and operators the exact names", () => {
        assert.equal(p.outputs.namePrefix, PREFIX);
        assert.equal(p.outputs.websocketUrl, `wss://${API_ID}.execute-api.${REGION}.amazonaws.com/prod`);
        assert.equal(p.outputs.managementEndpoint, ENDPOINT);
        assert.equal(p.outputs.connectionsTableName, TABLE);
        assert.equal(p.outputs.metricsTableName, `${PREFIX}-metrics`);
        assert.equal(p.outputs.fanoutQueueName, FANOUT_QUEUE);
        assert.equal(p.outputs.fanoutQueueUrl, sqsUrl(FANOUT_QUEUE));
        assert.equal(p.outputs.fanoutDlqName, FANOUT_DLQ);
        assert.equal(p.outputs.streamDlqName, STREAM_DLQ);
        assert.equal(p.outputs.alarmTopicArn, TOPIC_ARN);
        assert.deepEqual(p.outputs.functionNames, Object.fromEntries(FUNCTIONS.map((fn) => [fn, `${PREFIX}-${fn}`])));
    });
});
