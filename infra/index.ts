// The IOps dashboard real-time fan-out back end (see DESIGN.md):
//   browser -ws-> API Gateway [-> authorizer, authMode jwt] -> connect / disconnect / message -> connections table
//   metrics table stream -> processor -> fan-out queue (+ DLQ) -> fanout -> PostToConnection
//   rounds (rounds.ts): processor <- tick queue (+ DLQ) and a schedule; state in the broadcast state table
//   every minute: canary -> heartbeat write to the metrics table ... its update back over a WebSocket
// Build the functions first: `make package`. Names, config keys and alarms: RUNBOOK.md.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { alarms, alarmSpecs, alarmTopic } from "./alarms";
import { managementAccess, websocketApi, websocketApiResource } from "./api";
import { authorizerStatements } from "./authorizer";
import { canary, canarySettings } from "./canary";
import { LIVE_ALIAS, loadSettings } from "./config";
import { dashboard } from "./dashboard";
import { allow } from "./iam";
import { authorizerEnvironment, fanoutEnvironment, messageEnvironment, processorEnvironment, registryEnvironment, rustFunction } from "./functions";
import { queueMapping, streamMapping } from "./mappings";
import { queues as createQueues } from "./queues";
import { fanoutRoundStatements, messageSnapshotStatements, processorRoundStatements, tickMapping, tickSchedule } from "./rounds";
import { broadcastStateTable, connectionsTable, metricsSource } from "./tables";

const config = new pulumi.Config();
const settings = loadSettings({ get: (key) => config.get(key) }, pulumi.getProject(), pulumi.getStack());

const table = connectionsTable(settings);
const metrics = metricsSource(settings);
const queues = createQueues(settings);
const state = broadcastStateTable(settings);
const roundResources = { stateTableName: state.name, tickQueueUrl: queues.ticks.url };
// The index the functions page; while a new one replaces it, the old one too (RUNBOOK "Move the
// connections index to INCLUDE"): a processor still on the old name keeps working meanwhile.
const indexArns = [settings.connections.indexName, ...(settings.connections.previousIndexName !== undefined ? [settings.connections.previousIndexName] : [])].map(
    (name) => pulumi.interpolate`${table.arn}/index/${name}`,
);

const registry = {
    memoryMb: settings.registryFunctions.memoryMb,
    timeoutSeconds: settings.registryFunctions.timeoutSeconds,
    environment: registryEnvironment(settings, table.name),
};
const connect = rustFunction(settings, {
    fn: "connect",
    ...registry,
    statements: () => [allow("RegisterConnection", ["dynamodb:PutItem"], [table.arn])],
});
const disconnect = rustFunction(settings, {
    fn: "disconnect",
    ...registry,
    statements: () => [allow("RemoveConnection", ["dynamodb:DeleteItem"], [table.arn])],
});
// The API before the message function, which posts snapshots through its management endpoint;
// its routes after every function they invoke.
const api = websocketApiResource(settings);
const snapshotPosting = managementAccess(api, settings.api.stageName);
const message = rustFunction(settings, {
    fn: "message",
    memoryMb: registry.memoryMb,
    timeoutSeconds: registry.timeoutSeconds,
    environment: messageEnvironment(settings, table.name, snapshotPosting.managementEndpoint, state.name),
    statements: () => [
        // GetItem: a ping reads lastSeenAt first, and writes only when the row is due a refresh;
        // subscribe and snapshot read the row (its filter, its token's types); UpdateItem: the
        // ping's refresh, subscribe's new filter.
        allow("TouchConnection", ["dynamodb:GetItem", "dynamodb:UpdateItem"], [table.arn]),
        ...(settings.snapshots.enabled
            ? [
                  ...messageSnapshotStatements(state.arn),
                  allow("PostSnapshots", ["execute-api:ManageConnections"], snapshotPosting.manageConnectionsArns),
              ]
            : []),
    ],
});

// Only with authMode jwt: it decides, before $connect runs, whether a connection may exist.
const auth = settings.auth;
const authorizer =
    auth.mode === "jwt"
        ? rustFunction(settings, {
              fn: "authorizer",
              memoryMb: auth.memoryMb,
              timeoutSeconds: auth.timeoutSeconds,
              environment: authorizerEnvironment(settings, auth),
              statements: () => authorizerStatements(auth),
          })
        : undefined;

const ws = websocketApi(settings, api, { $connect: connect, $disconnect: disconnect, $default: message }, authorizer);

const processor = rustFunction(settings, {
    fn: "processor",
    memoryMb: settings.processor.memoryMb,
    timeoutSeconds: settings.processor.timeoutSeconds,
    environment: processorEnvironment(settings, table.name, queues.fanout.url, roundResources),
    statements: () => [
        allow("PageConnections", ["dynamodb:Query"], indexArns),
        allow(
            "ReadMetricsStream",
            ["dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams"],
            [metrics.streamArn],
        ),
        allow("EnqueueFanoutJobs", ["sqs:SendMessage"], [queues.fanout.arn]),
        allow("StreamOnFailureDestination", ["sqs:SendMessage"], [queues.streamDlq.arn]),
        ...processorRoundStatements(state.arn, queues.ticks.arn),
    ],
});

const fanout = rustFunction(settings, {
    fn: "fanout",
    memoryMb: settings.fanout.memoryMb,
    timeoutSeconds: settings.fanout.timeoutSeconds,
    environment: fanoutEnvironment(settings, table.name, queues.fanout.url, ws.managementEndpoint, roundResources),
    statements: () => [
        // What the queue mapping polls with (the function's role): Lambda needs exactly these
        // three (AWSLambdaSQSQueueExecutionRole); the code itself never receives or deletes.
        allow("ConsumeFanoutJobs", ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], [queues.fanout.arn]),
        allow("RequeueFanoutJobs", ["sqs:SendMessage"], [queues.fanout.arn]),
        // Gone connections are deleted in batches (Registry::remove_many -> BatchWriteItem), never one by one.
        allow("DeleteGoneConnections", ["dynamodb:BatchWriteItem"], [table.arn]),
        // The subjects of connections it gives up on, for its log lines (Registry::subjects).
        allow("ReadSubjects", ["dynamodb:BatchGetItem"], [table.arn]),
        allow("PostToConnections", ["execute-api:ManageConnections"], ws.manageConnectionsArns),
        ...fanoutRoundStatements(state.arn, queues.ticks.arn),
    ],
});

const streamToProcessor = streamMapping(settings, processor, metrics.streamArn, queues.streamDlq.arn);
const queueToFanout = queueMapping(settings, fanout, queues.fanout.arn);
const ticksToProcessor = tickMapping(settings, processor, queues.ticks.arn);
const schedule = tickSchedule(settings, processor);

// The end-to-end canary (canary.ts): a heartbeat through the whole pipeline every minute.
const canaryConfig = canarySettings({ get: (key) => config.get(key) }, settings);
const probe = canaryConfig && canary(settings, canaryConfig, { websocketUrl: ws.websocketUrl, metricsStreamArn: metrics.streamArn });

const specs = [...alarmSpecs(settings, { apiId: ws.api.id, stageName: settings.api.stageName }), ...(probe?.alarms ?? [])];
const topic = alarmTopic(settings);
alarms(settings, specs, topic);
const board = dashboard(settings, specs, aws.getRegionOutput().region, {
    apiId: ws.api.id,
    stageName: settings.api.stageName,
});

/** Every physical name except the tables': `<prefix>-fanout`, `<prefix>-fanout-dlq`, ... */
export const namePrefix = settings.prefix;
export const websocketUrl = ws.websocketUrl;
export const managementEndpoint = ws.managementEndpoint;
export const stageName = ws.stage.name;
export const connectionsTableName = table.name;
export const connectionsIndexName = settings.connections.indexName;
export const metricsTableName = metrics.tableName;
export const metricsStreamArn = metrics.streamArn;
export const fanoutQueueName = queues.fanout.name;
export const fanoutQueueUrl = queues.fanout.url;
export const fanoutDlqName = queues.fanoutDlq.name;
export const fanoutDlqUrl = queues.fanoutDlq.url;
export const streamDlqName = queues.streamDlq.name;
export const streamDlqUrl = queues.streamDlq.url;
/** Rounds (RUNBOOK "The posting budget and the broadcast modes"): state, ticks, the schedule. */
export const broadcastMode = settings.broadcast.mode;
export const postBudgetPerSecond = settings.broadcast.postBudgetPerSecond;
export const broadcastStateTableName = state.name;
export const tickQueueName = queues.ticks.name;
export const tickQueueUrl = queues.ticks.url;
export const tickDlqName = queues.ticksDlq.name;
export const tickDlqUrl = queues.ticksDlq.url;
export const tickScheduleName = schedule.rule.name;
/** The alias every caller invokes (RUNBOOK "Roll back a deploy" moves it). */
export const liveAlias = LIVE_ALIAS;
export const functionNames = {
    connect: connect.name,
    disconnect: disconnect.name,
    message: message.name,
    processor: processor.name,
    fanout: fanout.name,
    ...(authorizer !== undefined ? { authorizer: authorizer.name } : {}),
};
/** none or jwt (RUNBOOK "Turn authentication on or off"). */
export const authMode = settings.auth.mode;
/** $connect's authorizer (authMode jwt), as `aws apigatewayv2 get-authorizers` lists it. */
export const authorizerId = ws.auth?.authorizer.id;
export const streamMappingUuid = streamToProcessor.uuid;
export const fanoutMappingUuid = queueToFanout.uuid;
export const tickMappingUuid = ticksToProcessor.uuid;
export const alarmTopicArn = topic.arn;
export const dashboardName = board.dashboardName;
/** The end-to-end canary (config canaryEnabled), RUNBOOK "canary-latency". */
export const canaryFunctionName = probe?.name;
