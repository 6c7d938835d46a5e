// Stack configuration: every setting the program uses, its default and its valid range, read
// once. The functions' environment variables are built from these same settings (functions.ts),
// with the names and ranges the Rust code reads (registry/src/config.rs and the bins).
//
// Keys (namespace = the project, `iops-ws:`), all optional:
//   stageName                 API Gateway stage                                   prod
//   architecture              x86_64 | arm64 (build with LAMBDA_ARCH=arm64)        x86_64
//   artifactsDir              where `make package` put <fn>/bootstrap.zip          ../target/lambda
//   logLevel                  RUST_LOG for every function                          info
//   logRetentionDays          every log group's retention                          30
//   connectionsTableName      CONNECTIONS_TABLE_NAME                               iops-dashboard-websocket-connections
//   connectionsIndexName      CONNECTIONS_INDEX_NAME                               connected-connectedAt-index
//   connectionBuckets         CONNECTION_BUCKETS, 1..1000 (see RUNBOOK before changing)  1
//   connectionBucketsPrevious CONNECTION_BUCKETS_PREVIOUS, 0..1000 (0: none)             0
//   connectionTtlSeconds      CONNECTION_TTL_SECONDS, 60..604800                   86400
//   metricsTableName          create the metrics table with this name (with its stream)
//   metricsStreamArn          or: use the stream of a metrics table owned elsewhere
//   registryMemoryMb / registryTimeoutSeconds (connect, disconnect, message)        256 / 10
//   processorMemoryMb / processorTimeoutSeconds                                    512 / 300
//   fanoutShardSize           FANOUT_SHARD_SIZE, ids per FanoutJob, 1..20000        1000
//   queryPageSize             QUERY_PAGE_SIZE, items per GSI Query, 0 = up to 1 MB 0
//   processorSendConcurrency  SEND_CONCURRENCY, SendMessageBatch calls in flight   4
//   maxMessageBytes           MAX_MESSAGE_BYTES, payload part limit, ..131072      131072
//   queueMaxMessageBytes      QUEUE_MAX_MESSAGE_BYTES = the queue's maximum size,  1048576
//                             at least maxMessageBytes + 1024 (processor and fanout read it)
//   fanoutMemoryMb / fanoutTimeoutSeconds (queue visibility = 6 x timeout)         512 / 60
//   fanoutConcurrency         FANOUT_CONCURRENCY, posts in flight per invocation,  64
//                             1..1000
//   fanoutMaxAttempts         FANOUT_MAX_ATTEMPTS, 1..20                           5
//   fanoutBatchSize           SQS messages per fanout invocation, 1..10            1
//   fanoutMaxConcurrency      the SQS mapping's maximum concurrency, 2..1000       50
//   fanoutMaxReceiveCount     receives before a FanoutJob goes to the DLQ          5
//   routeThrottleRate / routeThrottleBurst      stage default route throttle       1000 / 500
//   connectThrottleRate / connectThrottleBurst  $connect route throttle            500 / 500
//   apiLoggingLevel           execution logging: ERROR | INFO | OFF                ERROR
//   manageApiGatewayAccount   set the account's API Gateway CloudWatch role        false
//   broadcastsEnabled         the stream -> processor mapping is enabled           true
//   deliveriesEnabled         the queue -> fanout mapping is enabled               true
//   alarmEmail                subscribe this address to the alarm topic
//   alarm thresholds: iteratorAgeMaxMs (60000), functionErrorsThreshold (0),
//     functionThrottlesThreshold (0), failedDeliveriesThreshold (0),
//     requeuedDeliveriesThreshold (10000 per 5 min), deliveryLatencyP99Ms (60000),
//     apiIntegrationErrorsThreshold (10), apiExecutionErrorsThreshold (0),
//     apiClientErrorsThreshold (100)

import * as path from "path";

/** Where a setting comes from: `pulumi.Config` in the program, a map in tests. */
export interface ConfigSource {
    get(key: string): string | undefined;
}

export type Architecture = "x86_64" | "arm64";

/** The five Lambda binaries (cargo-lambda output `target/lambda/<name>/bootstrap.zip`). */
export const FUNCTION_NAMES = ["connect", "disconnect", "message", "processor", "fanout"] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/** API Gateway's hard limit for one WebSocket message. */
export const API_GATEWAY_MAX_MESSAGE_BYTES = 131072;
/** SQS's largest maximum message size. */
export const SQS_MAX_MESSAGE_BYTES = 1048576;

/** The DynamoDB Streams -> processor mapping (DESIGN.md; the seed's batching). */
export const STREAM_MAPPING = {
    batchSize: 100,
    maximumBatchingWindowInSeconds: 5,
    bisectBatchOnFunctionError: true,
    maximumRetryAttempts: 3,
    startingPosition: "LATEST",
    // One batch per shard at a time keeps updates to an entity in stream order.
    parallelizationFactor: 1,
} as const;

/** The retention periods CloudWatch Logs accepts. */
const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

export interface Settings {
    project: string;
    stack: string;
    /** Prefix of every physical name this stack owns except the tables: `<project>-<stack>`. */
    prefix: string;
    architecture: Architecture;
    artifactsDir: string;
    logLevel: string;
    logRetentionDays: number;
    connections: {
        tableName: string;
        indexName: string;
        buckets: number;
        /** The old count while connectionBuckets changes (0: none); see the RUNBOOK. */
        previousBuckets: number;
        ttlSeconds: number;
    };
    metrics: { kind: "create"; tableName: string } | { kind: "existing"; streamArn: string };
    registryFunctions: { memoryMb: number; timeoutSeconds: number };
    processor: {
        memoryMb: number;
        timeoutSeconds: number;
        shardSize: number;
        maxMessageBytes: number;
        queryPageSize: number;
        sendConcurrency: number;
    };
    queue: {
        maxMessageBytes: number;
        visibilityTimeoutSeconds: number;
        retentionSeconds: number;
        dlqRetentionSeconds: number;
        maxReceiveCount: number;
    };
    /** RUNBOOK.md "Disable broadcasts": the two event source mappings' switches. */
    switches: { broadcasts: boolean; deliveries: boolean };
    fanout: {
        memoryMb: number;
        timeoutSeconds: number;
        concurrency: number;
        maxAttempts: number;
        batchSize: number;
        maxConcurrency: number;
    };
    api: {
        stageName: string;
        throttleRate: number;
        throttleBurst: number;
        connectThrottleRate: number;
        connectThrottleBurst: number;
        loggingLevel: "ERROR" | "INFO" | "OFF";
        manageAccount: boolean;
    };
    alarms: {
        email?: string;
        iteratorAgeMaxMs: number;
        functionErrors: number;
        functionThrottles: number;
        failedDeliveries: number;
        requeuedDeliveries: number;
        deliveryLatencyP99Ms: number;
        apiIntegrationErrors: number;
        apiExecutionErrors: number;
        apiClientErrors: number;
    };
}

export class ConfigError extends Error {}

class Reader {
    constructor(private readonly source: ConfigSource) {}

    string(key: string, fallback: string): string {
        const value = this.optional(key);
        return value ?? fallback;
    }

    optional(key: string): string | undefined {
        const value = this.source.get(key)?.trim();
        return value === undefined || value === "" ? undefined : value;
    }

    int(key: string, fallback: number, min: number, max: number): number {
        const raw = this.optional(key);
        if (raw === undefined) return fallback;
        if (!/^-?\d+$/.test(raw)) throw new ConfigError(`config ${key}=${JSON.stringify(raw)} is not an integer`);
        const value = Number(raw);
        if (value < min || value > max) {
            throw new ConfigError(`config ${key}=${raw} must be between ${min} and ${max}`);
        }
        return value;
    }

    bool(key: string, fallback: boolean): boolean {
        const raw = this.optional(key);
        if (raw === undefined) return fallback;
        if (raw === "true") return true;
        if (raw === "false") return false;
        throw new ConfigError(`config ${key}=${JSON.stringify(raw)} must be true or false`);
    }

    intOneOf(key: string, fallback: number, allowed: readonly number[]): number {
        const value = this.int(key, fallback, Math.min(...allowed), Math.max(...allowed));
        if (!allowed.includes(value)) {
            throw new ConfigError(`config ${key}=${value} must be one of ${allowed.join(", ")}`);
        }
        return value;
    }

    oneOf<T extends string>(key: string, fallback: T, allowed: readonly T[]): T {
        const raw = this.optional(key);
        if (raw === undefined) return fallback;
        if (!(allowed as readonly string[]).includes(raw)) {
            throw new ConfigError(`config ${key}=${JSON.stringify(raw)} must be one of ${allowed.join(", ")}`);
        }
        return raw as T;
    }
}

export function loadSettings(source: ConfigSource, project: string, stack: string): Settings {
    const c = new Reader(source);
    const prefix = `${project}-${stack}`;

    const metricsTableName = c.optional("metricsTableName");
    const metricsStreamArn = c.optional("metricsStreamArn");
    if (metricsTableName !== undefined && metricsStreamArn !== undefined) {
        throw new ConfigError(
            "set either metricsTableName (this stack creates the metrics table) or metricsStreamArn (the table is owned elsewhere), not both",
        );
    }
    if (metricsStreamArn !== undefined && !/^arn:aws[a-z-]*:dynamodb:[^:]+:\d{12}:table\/[^/]+\/stream\/.+$/.test(metricsStreamArn)) {
        throw new ConfigError(`config metricsStreamArn=${JSON.stringify(metricsStreamArn)} is not a DynamoDB stream ARN`);
    }
    const metrics: Settings["metrics"] =
        metricsStreamArn !== undefined
            ? { kind: "existing", streamArn: metricsStreamArn }
            : { kind: "create", tableName: metricsTableName ?? `${prefix}-metrics` };

    const maxMessageBytes = c.int("maxMessageBytes", API_GATEWAY_MAX_MESSAGE_BYTES, 1024, API_GATEWAY_MAX_MESSAGE_BYTES);
    const queueMaxMessageBytes = c.int("queueMaxMessageBytes", SQS_MAX_MESSAGE_BYTES, 1024, SQS_MAX_MESSAGE_BYTES);
    if (maxMessageBytes + 1024 > queueMaxMessageBytes) {
        throw new ConfigError(
            `queueMaxMessageBytes (${queueMaxMessageBytes}) must be at least maxMessageBytes (${maxMessageBytes}) + 1024: a FanoutJob carries a payload part plus connection ids`,
        );
    }

    const fanoutTimeoutSeconds = c.int("fanoutTimeoutSeconds", 60, 10, 900);
    // AWS's advice for an SQS event source: at least six times the function timeout, so a batch
    // that is still retrying inside Lambda is not handed to a second invocation meanwhile.
    const visibilityTimeoutSeconds = Math.min(6 * fanoutTimeoutSeconds, 43200);

    const settings: Settings = {
        project,
        stack,
        prefix,
        architecture: c.oneOf<Architecture>("architecture", "x86_64", ["x86_64", "arm64"]),
        artifactsDir: path.resolve(c.string("artifactsDir", path.join(__dirname, "..", "target", "lambda"))),
        logLevel: c.string("logLevel", "info"),
        logRetentionDays: c.intOneOf("logRetentionDays", 30, LOG_RETENTION_DAYS),
        connections: {
            tableName: c.string("connectionsTableName", "iops-dashboard-websocket-connections"),
            indexName: c.string("connectionsIndexName", "connected-connectedAt-index"),
            buckets: c.int("connectionBuckets", 1, 1, 1000),
            previousBuckets: c.int("connectionBucketsPrevious", 0, 0, 1000),
            ttlSeconds: c.int("connectionTtlSeconds", 86400, 60, 7 * 86400),
        },
        metrics,
        registryFunctions: {
            memoryMb: c.int("registryMemoryMb", 256, 128, 10240),
            timeoutSeconds: c.int("registryTimeoutSeconds", 10, 1, 29),
        },
        processor: {
            memoryMb: c.int("processorMemoryMb", 512, 128, 10240),
            timeoutSeconds: c.int("processorTimeoutSeconds", 300, 10, 900),
            shardSize: c.int("fanoutShardSize", 1000, 1, 20000),
            maxMessageBytes,
            queryPageSize: c.int("queryPageSize", 0, 0, 10000),
            sendConcurrency: c.int("processorSendConcurrency", 4, 1, 64),
        },
        queue: {
            maxMessageBytes: queueMaxMessageBytes,
            visibilityTimeoutSeconds,
            retentionSeconds: 4 * 86400,
            dlqRetentionSeconds: 14 * 86400,
            maxReceiveCount: c.int("fanoutMaxReceiveCount", 5, 1, 1000),
        },
        switches: {
            broadcasts: c.bool("broadcastsEnabled", true),
            deliveries: c.bool("deliveriesEnabled", true),
        },
        fanout: {
            memoryMb: c.int("fanoutMemoryMb", 512, 128, 10240),
            timeoutSeconds: fanoutTimeoutSeconds,
            concurrency: c.int("fanoutConcurrency", 64, 1, 1000),
            maxAttempts: c.int("fanoutMaxAttempts", 5, 1, 20),
            batchSize: c.int("fanoutBatchSize", 1, 1, 10),
            maxConcurrency: c.int("fanoutMaxConcurrency", 50, 2, 1000),
        },
        api: {
            stageName: c.string("stageName", "prod"),
            throttleRate: c.int("routeThrottleRate", 1000, 1, 100000),
            throttleBurst: c.int("routeThrottleBurst", 500, 1, 100000),
            connectThrottleRate: c.int("connectThrottleRate", 500, 1, 100000),
            connectThrottleBurst: c.int("connectThrottleBurst", 500, 1, 100000),
            loggingLevel: c.oneOf("apiLoggingLevel", "ERROR", ["ERROR", "INFO", "OFF"] as const),
            manageAccount: c.bool("manageApiGatewayAccount", false),
        },
        alarms: {
            email: c.optional("alarmEmail"),
            iteratorAgeMaxMs: c.int("iteratorAgeMaxMs", 60000, 1000, 86400000),
            functionErrors: c.int("functionErrorsThreshold", 0, 0, 1000000),
            functionThrottles: c.int("functionThrottlesThreshold", 0, 0, 1000000),
            failedDeliveries: c.int("failedDeliveriesThreshold", 0, 0, 100000000),
            requeuedDeliveries: c.int("requeuedDeliveriesThreshold", 10000, 0, 100000000),
            deliveryLatencyP99Ms: c.int("deliveryLatencyP99Ms", 60000, 1, 3600000),
            apiIntegrationErrors: c.int("apiIntegrationErrorsThreshold", 10, 0, 100000000),
            apiExecutionErrors: c.int("apiExecutionErrorsThreshold", 0, 0, 100000000),
            apiClientErrors: c.int("apiClientErrorsThreshold", 100, 0, 100000000),
        },
    };
    if (!/^[A-Za-z0-9_]{1,128}$/.test(settings.api.stageName)) {
        throw new ConfigError(`config stageName=${JSON.stringify(settings.api.stageName)} may hold only letters, digits and _`);
    }
    return settings;
}

/** Physical names, all derived here so that RUNBOOK.md can name them exactly. */
export function functionName(settings: Settings, fn: FunctionName): string {
    return `${settings.prefix}-${fn}`;
}

export function functionLogGroupName(settings: Settings, fn: FunctionName): string {
    return `/aws/lambda/${functionName(settings, fn)}`;
}

export function queueNames(settings: Settings): { fanout: string; fanoutDlq: string; streamDlq: string } {
    return {
        fanout: `${settings.prefix}-fanout`,
        fanoutDlq: `${settings.prefix}-fanout-dlq`,
        streamDlq: `${settings.prefix}-stream-dlq`,
    };
}
