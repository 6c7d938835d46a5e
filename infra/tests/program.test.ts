// The program with its defaults (stack `test`, which creates the metrics table): every value the
// functions, the mappings and the on-call engineer rely on, checked against Pulumi's mocks.

import * as assert from "node:assert/strict";
import { before, describe, it } from "node:test";

import { ACCOUNT, API_ID, fakeArtifacts, FUNCTIONS, grants, Program, REGION, runProgram } from "./harness";

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
const ENDPOINT = `https://${API_ID}.execute-api.${REGION}.amazonaws.com/prod`;
const EXECUTION_ARN = `arn:aws:execute-api:${REGION}:${ACCOUNT}:${API_ID}`;
const TOPIC_ARN = `arn:aws:sns:${REGION}:${ACCOUNT}:${PREFIX}-alarms`;
const fnArn = (fn: string) => `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${PREFIX}-${fn}`;
const logGroupArn = (fn: string) => `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:/aws/lambda/${PREFIX}-${fn}`;

const FUNCTION = "aws:lambda/function:Function";
const MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping";
const QUEUE = "aws:sqs/queue:Queue";
const ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm";

let p: Program;
before(async () => {
    p = await runProgram({ artifactsDir: fakeArtifacts(), fanoutMaxConcurrency: "37", alarmEmail: "oncall@example.com" });
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
                projectionType: "KEYS_ONLY",
            },
        ]);
        assert.deepEqual(t.ttl, { attributeName: "ttl", enabled: true });
        assert.equal(t.billingMode, "PAY_PER_REQUEST");
        assert.deepEqual(t.pointInTimeRecovery, { enabled: true });
        assert.equal(t.streamEnabled, undefined);
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
});

describe("event source mappings", () => {
    it("stream -> processor: batch 100, window 5 s, bisect, 3 retries, on-failure DLQ, partial failures", () => {
        const m = p.one(MAPPING, "processor-stream").inputs;
        assert.deepEqual(m, {
            functionName: fnArn("processor"),
            eventSourceArn: METRICS_STREAM_ARN,
            startingPosition: "LATEST",
            batchSize: 100,
            maximumBatchingWindowInSeconds: 5,
            parallelizationFactor: 1,
            enabled: true,
            bisectBatchOnFunctionError: true,
            maximumRetryAttempts: 3,
            destinationConfig: { onFailure: { destinationArn: sqsArn(STREAM_DLQ) } },
            functionResponseTypes: ["ReportBatchItemFailures"],
        });
    });

    it("queue -> fanout: partial failures, maximum concurrency from config", () => {
        const m = p.one(MAPPING, "fanout-queue").inputs;
        assert.deepEqual(m, {
            functionName: fnArn("fanout"),
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
            assert.deepEqual(f.loggingConfig, { logFormat: "Text", logGroup: `/aws/lambda/${PREFIX}-${fn}` });
            roles.add(f.role);
            const lg = p.one("aws:cloudwatch/logGroup:LogGroup", fn).inputs;
            assert.equal(lg.name, `/aws/lambda/${PREFIX}-${fn}`);
            assert.equal(lg.retentionInDays, 30);
        }
        assert.equal(roles.size, FUNCTIONS.length);
    });

    it("every function's environment names the real table, index, queue and endpoint", () => {
        const env = (fn: string) => p.one(FUNCTION, fn).inputs.environment.variables;
        const registry = {
            RUST_LOG: "info",
            CONNECTIONS_TABLE_NAME: TABLE,
            CONNECTIONS_INDEX_NAME: INDEX,
            CONNECTION_BUCKETS: "1",
            CONNECTION_BUCKETS_PREVIOUS: "0",
            CONNECTION_TTL_SECONDS: "86400",
        };
        for (const fn of ["connect", "disconnect", "message"]) assert.deepEqual(env(fn), registry);
        // processor and fanout read RegistryConfig as well (processor/src/config.rs, fanout/src/config.rs).
        assert.deepEqual(env("processor"), {
            ...registry,
            FANOUT_QUEUE_URL: sqsUrl(FANOUT_QUEUE),
            FANOUT_SHARD_SIZE: "1000",
            MAX_MESSAGE_BYTES: "131072",
            QUEUE_MAX_MESSAGE_BYTES: "1048576",
            QUERY_PAGE_SIZE: "0",
            SEND_CONCURRENCY: "4",
        });
        assert.deepEqual(env("fanout"), {
            ...registry,
            WEBSOCKET_API_ENDPOINT: ENDPOINT,
            FANOUT_QUEUE_URL: sqsUrl(FANOUT_QUEUE),
            QUEUE_MAX_MESSAGE_BYTES: "1048576",
            FANOUT_CONCURRENCY: "64",
            FANOUT_MAX_ATTEMPTS: "5",
        });
        // The values are the resources', not strings that happen to agree.
        for (const fn of ["processor", "fanout"]) {
            assert.equal(env(fn).QUEUE_MAX_MESSAGE_BYTES, String(p.one(QUEUE, "fanout").inputs.maxMessageSize));
        }
        assert.equal(env("fanout").FANOUT_QUEUE_URL, p.outputs.fanoutQueueUrl);
        assert.equal(env("connect").CONNECTIONS_TABLE_NAME, p.outputs.connectionsTableName);
        assert.equal(env("fanout").WEBSOCKET_API_ENDPOINT, p.outputs.managementEndpoint);
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
        message: { ...logs("message"), "dynamodb:UpdateItem": [TABLE_ARN] },
        processor: {
            ...logs("processor"),
            "dynamodb:Query": [`${TABLE_ARN}/index/${INDEX}`],
            "dynamodb:DescribeStream": [METRICS_STREAM_ARN],
            "dynamodb:GetRecords": [METRICS_STREAM_ARN],
            "dynamodb:GetShardIterator": [METRICS_STREAM_ARN],
            "dynamodb:ListStreams": [METRICS_STREAM_ARN],
            "sqs:SendMessage": [sqsArn(FANOUT_QUEUE), sqsArn(STREAM_DLQ)].sort(),
        },
        fanout: {
            ...logs("fanout"),
            "sqs:ReceiveMessage": [sqsArn(FANOUT_QUEUE)],
            "sqs:DeleteMessage": [sqsArn(FANOUT_QUEUE)],
            "sqs:GetQueueAttributes": [sqsArn(FANOUT_QUEUE)],
            "sqs:ChangeMessageVisibility": [sqsArn(FANOUT_QUEUE)],
            "sqs:SendMessage": [sqsArn(FANOUT_QUEUE)],
            "dynamodb:BatchWriteItem": [TABLE_ARN],
            "dynamodb:DeleteItem": [TABLE_ARN],
            "execute-api:ManageConnections": [
                `${EXECUTION_ARN}/prod/DELETE/@connections/*`,
                `${EXECUTION_ARN}/prod/POST/@connections/*`,
            ],
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

    it("ManageConnections is granted to fanout only, on this stage's POST and DELETE only", () => {
        for (const fn of FUNCTIONS) {
            const granted = grants(p.statements(fn))["execute-api:ManageConnections"];
            if (fn === "fanout") {
                for (const arn of granted) assert.match(arn, new RegExp(`^${EXECUTION_ARN}/prod/(POST|DELETE)/@connections/\\*$`));
                assert.equal(granted.length, 2);
            } else {
                assert.equal(granted, undefined, fn);
            }
        }
    });
});

describe("WebSocket API", () => {
    it("routes $connect, $disconnect and $default to their functions through Lambda proxy integrations", () => {
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
                `arn:aws:apigateway:${REGION}:lambda:path/2015-03-31/functions/${fnArn(fn)}/invocations`,
            );
            const permission = p.one("aws:lambda/permission:Permission", fn).inputs;
            assert.equal(permission.action, "lambda:InvokeFunction");
            assert.equal(permission.function, `${PREFIX}-${fn}`);
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
        assert.deepEqual(stage.defaultRouteSettings, {
            throttlingRateLimit: 1000,
            throttlingBurstLimit: 500,
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

describe("alarms", () => {
    type Expected = [namespace: string, metric: string, dimensions: Record<string, string>, stat: string, period: number, evaluations: number, threshold: number];
    const lambda = (fn: string) => ({ FunctionName: `${PREFIX}-${fn}` });
    const api = { ApiId: API_ID, Stage: "prod" };
    const expected: Record<string, Expected> = {
        "processor-iterator-age": ["AWS/Lambda", "IteratorAge", lambda("processor"), "Maximum", 60, 5, 60000],
        "stream-dlq-depth": ["AWS/SQS", "ApproximateNumberOfMessagesVisible", { QueueName: STREAM_DLQ }, "Maximum", 60, 1, 0],
        "fanout-dlq-depth": ["AWS/SQS", "ApproximateNumberOfMessagesVisible", { QueueName: FANOUT_DLQ }, "Maximum", 60, 1, 0],
        "fanout-failed-deliveries": ["IopsDashboard", "Failed", { Service: "fanout" }, "Sum", 300, 1, 0],
        "fanout-requeued-deliveries": ["IopsDashboard", "Requeued", { Service: "fanout" }, "Sum", 300, 3, 10000],
        "fanout-delivery-latency": ["IopsDashboard", "DeliveryLatency", { Service: "fanout" }, "p99", 300, 3, 60000],
        "fanout-forbidden": ["IopsDashboard", "Forbidden", { Service: "fanout" }, "Sum", 300, 1, 0],
        "api-integration-errors": ["AWS/ApiGateway", "IntegrationError", api, "Sum", 300, 1, 10],
        "api-execution-errors": ["AWS/ApiGateway", "ExecutionError", api, "Sum", 300, 1, 0],
        "api-client-errors": ["AWS/ApiGateway", "ClientError", api, "Sum", 300, 1, 100],
    };
    for (const fn of FUNCTIONS) {
        expected[`${fn}-errors`] = ["AWS/Lambda", "Errors", lambda(fn), "Sum", 300, 1, 0];
        expected[`${fn}-throttles`] = ["AWS/Lambda", "Throttles", lambda(fn), "Sum", 300, 1, 0];
    }

    it("exactly these alarms exist", () => {
        assert.deepEqual(p.all(ALARM).map((a) => a.name).sort(), Object.keys(expected).sort());
    });

    for (const [name, [namespace, metric, dimensions, stat, period, evaluations, threshold]] of Object.entries(expected)) {
        it(`${name}: ${namespace} ${metric} ${stat} > ${threshold}, to the SNS topic`, () => {
            const a = p.one(ALARM, name).inputs;
            assert.equal(a.name, `${PREFIX}-${name}`);
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
            assert.equal(a.evaluationPeriods, evaluations);
            assert.equal(a.datapointsToAlarm, evaluations);
            assert.equal(a.threshold, threshold);
            assert.equal(a.comparisonOperator, "GreaterThanThreshold");
            assert.equal(a.treatMissingData, "notBreaching");
            assert.deepEqual(a.alarmActions, [TOPIC_ARN]);
            assert.deepEqual(a.okActions, [TOPIC_ARN]);
            assert.match(a.alarmDescription, new RegExp(`RUNBOOK\\.md, section "${name}"`));
        });
    }

    it("the topic mails the configured address", () => {
        assert.equal(p.one("aws:sns/topic:Topic", "alarms").inputs.name, `${PREFIX}-alarms`);
        const sub = p.one("aws:sns/topicSubscription:TopicSubscription", "alarms-email").inputs;
        assert.deepEqual(sub, { topic: TOPIC_ARN, protocol: "email", endpoint: "oncall@example.com" });
    });
});

describe("dashboard", () => {
    it("graphs every alarm's metric with its statistic and threshold", () => {
        const body = JSON.parse(p.one("aws:cloudwatch/dashboard:Dashboard", "dashboard").inputs.dashboardBody);
        const widgets: any[] = body.widgets;
        for (const alarm of p.all(ALARM)) {
            const a = alarm.inputs;
            const w = widgets.find((x) => x.properties.title === alarm.name);
            assert.ok(w, `no widget for ${alarm.name}`);
            assert.equal(w.properties.region, REGION);
            assert.equal(w.properties.stat, a.statistic ?? a.extendedStatistic);
            assert.equal(w.properties.period, a.period);
            assert.deepEqual(w.properties.annotations.horizontal.map((h: any) => h.value), [a.threshold]);
            const dims = Object.entries(a.dimensions as Record<string, string>).flat();
            assert.deepEqual(w.properties.metrics[0].slice(0, -1), [a.namespace, a.metricName, ...dims]);
        }
        for (const w of widgets) {
            if (w.type === "metric") assert.ok(w.x + w.width <= 24, "widget inside the 24-column grid");
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
