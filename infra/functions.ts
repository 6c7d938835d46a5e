// The Rust functions (five, and the authorizer with authMode jwt): each with its own log group
// (retention from config), its own role and
// the environment its bin reads, published as a new version on every change behind the alias
// `live`, which is what API Gateway and the event source mappings invoke: a rollback moves the
// alias back to an earlier version (RUNBOOK "Roll back a deploy") without a build. The
// environment builders below are the one place where stack settings become the variables of
// registry/src/config.rs, snapshot/src/config.rs, the processor and fanout bins and
// authorizer/src/config.rs.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { checkedArtifact } from "./artifacts";
import { functionLogGroupName, functionName, FunctionName, JwtAuthSettings, LIVE_ALIAS, Settings } from "./config";
import { lambdaRole, ownLogGroup, Statement } from "./iam";

export type Environment = Record<string, pulumi.Input<string>>;

export interface RustFunction {
    name: string;
    function: aws.lambda.Function;
    /** `live`: what every caller invokes (its ARN, its invoke ARN, qualifier `live`). */
    alias: aws.lambda.Alias;
    role: aws.iam.Role;
    policy: aws.iam.RolePolicy;
    logGroup: aws.cloudwatch.LogGroup;
}

export interface RustFunctionArgs {
    fn: FunctionName;
    memoryMb: number;
    timeoutSeconds: number;
    environment: Environment;
    /** What the code calls, besides writing its logs. */
    statements: (logGroupArn: pulumi.Output<string>) => Statement[];
}

export function rustFunction(settings: Settings, args: RustFunctionArgs): RustFunction {
    const name = functionName(settings, args.fn);
    // Exists, and is a bootstrap for this stack's architecture (a clear error otherwise).
    const artifact = checkedArtifact(settings, args.fn);

    // Created before the function, so Lambda never creates it without a retention.
    const logGroup = new aws.cloudwatch.LogGroup(args.fn, {
        name: functionLogGroupName(settings, args.fn),
        retentionInDays: settings.logRetentionDays,
    });
    const { role, policy } = lambdaRole(args.fn, name, [ownLogGroup(logGroup.arn), ...args.statements(logGroup.arn)]);

    const fn = new aws.lambda.Function(
        args.fn,
        {
            name,
            // Published with each version: `aws lambda list-versions-by-function` shows which
            // commit every version runs (the rollback procedure picks versions by it).
            description: `${name} build ${artifact.build ?? "unknown"} ${settings.architecture}`,
            runtime: "provided.al2023",
            handler: "bootstrap",
            architectures: [settings.architecture],
            code: new pulumi.asset.FileArchive(artifact.zip),
            role: role.arn,
            memorySize: args.memoryMb,
            timeout: args.timeoutSeconds,
            environment: { variables: args.environment },
            // JSON: Lambda then sets AWS_LAMBDA_LOG_FORMAT=JSON and AWS_LAMBDA_LOG_LEVEL, which the
            // functions honour (platform/src/telemetry/logs.rs), so the application log level can
            // be changed from the console without a deploy. The functions write their own JSON
            // lines and EMF documents; a custom runtime's lines pass through as written.
            loggingConfig: jsonLogging(settings, logGroup),
            // Every change of code or configuration becomes an immutable, numbered version.
            publish: true,
        },
        { dependsOn: [logGroup, policy] },
    );
    const alias = new aws.lambda.Alias(args.fn, {
        name: LIVE_ALIAS,
        functionName: fn.name,
        // The version just published, unless config pins an earlier one (a rollback).
        functionVersion: settings.liveVersions[args.fn] !== undefined ? String(settings.liveVersions[args.fn]) : fn.version,
        description: `What API Gateway and the event source mappings invoke; RUNBOOK "Roll back a deploy" moves it`,
    });
    return { name, function: fn, alias, role, policy, logGroup };
}

/** A function's logging: JSON, at the stage's level, into its own log group. */
export function jsonLogging(settings: Settings, logGroup: aws.cloudwatch.LogGroup): aws.types.input.lambda.FunctionLoggingConfig {
    return {
        logFormat: "JSON",
        applicationLogLevel: lambdaLogLevel(settings.logLevel),
        systemLogLevel: "INFO",
        logGroup: logGroup.name,
    };
}

/**
 * Lambda's application log level for a RUST_LOG-style setting: its default level (the part
 * before any per-crate directive), upper case.
 */
export function lambdaLogLevel(rustLog: string): string {
    const base = rustLog.split(",").map((d) => d.trim()).find((d) => d !== "" && !d.includes("=")) ?? "info";
    const level = base.toUpperCase();
    return ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"].includes(level) ? level : "INFO";
}

/** connect, disconnect, message: registry/src/config.rs `RegistryConfig`. */
export function registryEnvironment(settings: Settings, tableName: pulumi.Input<string>): Environment {
    const c = settings.connections;
    return {
        RUST_LOG: settings.logLevel,
        // The `Stage` dimension of every EMF document (metrics.json), the stage the alarms and
        // the dashboard read: two stacks in one account never mix their metrics.
        STAGE: settings.api.stageName,
        CONNECTIONS_TABLE_NAME: tableName,
        CONNECTIONS_INDEX_NAME: c.indexName,
        CONNECTION_BUCKETS: String(c.buckets),
        CONNECTION_BUCKETS_PREVIOUS: String(c.previousBuckets),
        CONNECTION_TTL_SECONDS: String(c.ttlSeconds),
        CONNECTION_TOUCH_INTERVAL_SECONDS: String(c.touchIntervalSeconds),
    };
}

/**
 * The message function ($default): snapshot/src/config.rs `MessageConfig`, the registry's
 * variables and, with snapshots on, the state table whose entities snapshots are cut from and
 * the endpoint their parts are posted to. Without STATE_TABLE_NAME a snapshot request gets ERROR.
 */
export function messageEnvironment(
    settings: Settings,
    tableName: pulumi.Input<string>,
    managementEndpoint: pulumi.Input<string>,
    stateTableName: pulumi.Input<string>,
): Environment {
    const env = registryEnvironment(settings, tableName);
    if (!settings.snapshots.enabled) return env;
    return {
        ...env,
        WEBSOCKET_API_ENDPOINT: managementEndpoint,
        STATE_TABLE_NAME: stateTableName,
        SNAPSHOT_CACHE_MS: String(settings.snapshots.cacheMs),
    };
}

/** What rounds need: the state table and the tick queue (rounds/src/settings.rs). */
export interface RoundResources {
    stateTableName: pulumi.Input<string>;
    tickQueueUrl: pulumi.Input<string>;
}

/**
 * processor/src/config.rs `ProcessorConfig` (which reads `RegistryConfig` too) and, in rounds
 * mode, `RoundSettings`; set in batch mode as well, so that switching modes is one variable
 * (there the processor keeps each entity's latest change in the state table, for snapshots).
 */
export function processorEnvironment(
    settings: Settings,
    tableName: pulumi.Input<string>,
    fanoutQueueUrl: pulumi.Input<string>,
    rounds: RoundResources,
): Environment {
    const b = settings.broadcast;
    return {
        ...registryEnvironment(settings, tableName),
        FANOUT_QUEUE_URL: fanoutQueueUrl,
        FANOUT_SHARD_SIZE: String(settings.processor.shardSize),
        MAX_MESSAGE_BYTES: String(settings.processor.maxMessageBytes),
        // The queue's maxMessageSize is set from the same setting (queues.ts).
        QUEUE_MAX_MESSAGE_BYTES: String(settings.queue.maxMessageBytes),
        QUERY_PAGE_SIZE: String(settings.processor.queryPageSize),
        SEND_CONCURRENCY: String(settings.processor.sendConcurrency),
        BROADCAST_MODE: b.mode,
        // The processor sizes a round's lease from it; the fanout paces to it.
        POST_BUDGET_PER_SECOND: String(b.postBudgetPerSecond),
        ROUND_LEASE_SECONDS: String(b.roundLeaseSeconds),
        STATE_TABLE_NAME: rounds.stateTableName,
        TICK_QUEUE_URL: rounds.tickQueueUrl,
    };
}

/**
 * fanout/src/config.rs `FanoutConfig` (which reads `RegistryConfig` too): the posting budget's
 * windows are in the state table; a round's last job ends it and sends a tick.
 */
export function fanoutEnvironment(
    settings: Settings,
    tableName: pulumi.Input<string>,
    fanoutQueueUrl: pulumi.Input<string>,
    managementEndpoint: pulumi.Input<string>,
    rounds: RoundResources,
): Environment {
    return {
        ...registryEnvironment(settings, tableName),
        WEBSOCKET_API_ENDPOINT: managementEndpoint,
        FANOUT_QUEUE_URL: fanoutQueueUrl,
        // Requeued jobs are sized for the same queue.
        QUEUE_MAX_MESSAGE_BYTES: String(settings.queue.maxMessageBytes),
        FANOUT_CONCURRENCY: String(settings.fanout.concurrency),
        FANOUT_MAX_ATTEMPTS: String(settings.fanout.maxAttempts),
        POST_BUDGET_PER_SECOND: String(settings.broadcast.postBudgetPerSecond),
        STATE_TABLE_NAME: rounds.stateTableName,
        TICK_QUEUE_URL: rounds.tickQueueUrl,
    };
}

/**
 * The authorizer: authorizer/src/config.rs and authorizer/src/secret.rs. The HS256 secret's
 * ARN, never its value: the function fetches the value at cold start, so it is in neither the
 * stack's config nor the function's configuration (which `lambda:GetFunctionConfiguration`
 * shows to anyone who may read it). Only the settings the stack gives are set.
 */
export function authorizerEnvironment(settings: Settings, auth: JwtAuthSettings): Environment {
    const env: Environment = {
        RUST_LOG: settings.logLevel,
        // The `Stage` dimension of its EMF documents (Allowed, Denied, ...), as for the others.
        STAGE: settings.api.stageName,
        // The function refuses to start with anything else (it is deployed only for jwt).
        AUTH_MODE: "jwt",
    };
    if (auth.secretArn !== undefined) env.AUTH_JWT_SECRET_ARN = auth.secretArn;
    if (auth.jwksUrl !== undefined) env.AUTH_JWKS_URL = auth.jwksUrl;
    if (auth.issuer !== undefined) env.AUTH_ISSUER = auth.issuer;
    if (auth.audiences.length > 0) env.AUTH_AUDIENCE = auth.audiences.join(",");
    // Read by no code: a new value is a new configuration, hence a new version whose cold starts
    // fetch the secret again (RUNBOOK "Rotate the JWT secret").
    if (auth.secretGeneration !== undefined) env.AUTH_SECRET_GENERATION = String(auth.secretGeneration);
    return env;
}
