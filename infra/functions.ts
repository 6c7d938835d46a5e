// The five Rust functions: each with its own log group (retention from config), its own role and
// the environment its bin reads. The environment builders below are the one place where stack
// settings become the variables of registry/src/config.rs and the processor and fanout bins.

import * as fs from "fs";
import * as path from "path";

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { functionLogGroupName, functionName, FunctionName, Settings } from "./config";
import { lambdaRole, ownLogGroup, Statement } from "./iam";

export type Environment = Record<string, pulumi.Input<string>>;

export interface RustFunction {
    name: string;
    function: aws.lambda.Function;
    role: aws.iam.Role;
    policy: aws.iam.RolePolicy;
    logGroup: aws.cloudwatch.LogGroup;
}

/** `target/lambda/<fn>/bootstrap.zip`, as `make package` builds it. */
export function artifactPath(settings: Settings, fn: FunctionName): string {
    return path.join(settings.artifactsDir, fn, "bootstrap.zip");
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
    const zip = artifactPath(settings, args.fn);
    if (!fs.existsSync(zip)) {
        throw new Error(`${zip} is missing: run \`make package\` first (LAMBDA_ARCH=${settings.architecture})`);
    }

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
            runtime: "provided.al2023",
            handler: "bootstrap",
            architectures: [settings.architecture],
            code: new pulumi.asset.FileArchive(zip),
            role: role.arn,
            memorySize: args.memoryMb,
            timeout: args.timeoutSeconds,
            environment: { variables: args.environment },
            // Text: the functions write their own JSON log lines and EMF documents to stdout.
            loggingConfig: { logFormat: "Text", logGroup: logGroup.name },
        },
        { dependsOn: [logGroup, policy] },
    );
    return { name, function: fn, role, policy, logGroup };
}

/** connect, disconnect, message: registry/src/config.rs `RegistryConfig`. */
export function registryEnvironment(settings: Settings, tableName: pulumi.Input<string>): Environment {
    const c = settings.connections;
    return {
        RUST_LOG: settings.logLevel,
        CONNECTIONS_TABLE_NAME: tableName,
        CONNECTIONS_INDEX_NAME: c.indexName,
        CONNECTION_BUCKETS: String(c.buckets),
        CONNECTION_BUCKETS_PREVIOUS: String(c.previousBuckets),
        CONNECTION_TTL_SECONDS: String(c.ttlSeconds),
    };
}

/** processor/src/config.rs `ProcessorConfig` (which reads `RegistryConfig` too). */
export function processorEnvironment(
    settings: Settings,
    tableName: pulumi.Input<string>,
    fanoutQueueUrl: pulumi.Input<string>,
): Environment {
    return {
        ...registryEnvironment(settings, tableName),
        FANOUT_QUEUE_URL: fanoutQueueUrl,
        FANOUT_SHARD_SIZE: String(settings.processor.shardSize),
        MAX_MESSAGE_BYTES: String(settings.processor.maxMessageBytes),
        // The queue's maxMessageSize is set from the same setting (queues.ts).
        QUEUE_MAX_MESSAGE_BYTES: String(settings.queue.maxMessageBytes),
        QUERY_PAGE_SIZE: String(settings.processor.queryPageSize),
        SEND_CONCURRENCY: String(settings.processor.sendConcurrency),
    };
}

/** fanout/src/config.rs `FanoutConfig` (which reads `RegistryConfig` too). */
export function fanoutEnvironment(
    settings: Settings,
    tableName: pulumi.Input<string>,
    fanoutQueueUrl: pulumi.Input<string>,
    managementEndpoint: pulumi.Input<string>,
): Environment {
    return {
        ...registryEnvironment(settings, tableName),
        WEBSOCKET_API_ENDPOINT: managementEndpoint,
        FANOUT_QUEUE_URL: fanoutQueueUrl,
        // Requeued jobs are sized for the same queue.
        QUEUE_MAX_MESSAGE_BYTES: String(settings.queue.maxMessageBytes),
        FANOUT_CONCURRENCY: String(settings.fanout.concurrency),
        FANOUT_MAX_ATTEMPTS: String(settings.fanout.maxAttempts),
    };
}
