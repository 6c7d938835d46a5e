// Stack configuration: every setting the program uses, its default and its valid range, read
// once. The functions' environment variables are built from these same settings (functions.ts),
// with the names and ranges the Rust code reads (registry/src/config.rs and the bins).
//
// Keys (namespace = the project, `iops-ws:`), all optional except the metrics source:
//   stageName                 API Gateway stage, and STAGE (the `Stage` dimension of every     prod
//                             custom metric): unique per account and region across stacks
//   architecture              x86_64 | arm64 (build with LAMBDA_ARCH=arm64); the program reads  x86_64
//                             each zip's bootstrap (ELF header) and refuses another architecture
//   artifactsDir              where `make package` put <fn>/bootstrap.zip          ../target/lambda
//   artifactBuild             deploy <fn>/bootstrap-<build>-<arch>.zip (the copy `make package`
//                             keeps per git commit) instead of <fn>/bootstrap.zip   unset
//   connectLiveVersion, disconnectLiveVersion, messageLiveVersion, processorLiveVersion,
//   fanoutLiveVersion, authorizerLiveVersion
//                             pin the `live` alias to this published version (a rollback,
//                             RUNBOOK "Roll back a deploy"); unset: the version just published
//   logLevel                  RUST_LOG for every function                          info
//   logRetentionDays          every log group's retention                          30
//   connectionsTableName      CONNECTIONS_TABLE_NAME                               iops-dashboard-websocket-connections
//   connectionsIndexName      CONNECTIONS_INDEX_NAME                               connected-connectedAt-index
//   connectionsIndexProjection  INCLUDE | KEYS_ONLY | ALL: the GSI's projection. INCLUDE      INCLUDE
//                             carries what each connection receives (entityTypes, entityIds,
//                             allowedEntityTypes), which the processor pages without a read per
//                             connection; ALL carries them too. KEYS_ONLY only while adopting the
//                             seed's index (RUNBOOK "Move the connections index to INCLUDE"):
//                             filters and tokens' entity types then do not limit broadcasts, so it
//                             is refused with authMode jwt
//   connectionsIndexPrevious  while moving to a new index: the old one's name, kept     unset
//                             (KEYS_ONLY) and still queryable until the switch is done
//   connectionBuckets         CONNECTION_BUCKETS, 1..1000 (see RUNBOOK before changing)  1
//   connectionBucketsPrevious CONNECTION_BUCKETS_PREVIOUS, 0..1000 (0: none)             0
//   connectionTtlSeconds      CONNECTION_TTL_SECONDS, 60..604800, above the touch interval  86400
//   connectionTouchIntervalSeconds  CONNECTION_TOUCH_INTERVAL_SECONDS, 0..3600: a ping writes
//                             the row only when its lastSeenAt is older (0: every ping)  300
//   The metrics source, exactly one of (no default: a stack without one is a config error):
//   metricsStreamArn          the NEW_AND_OLD_IMAGES stream of the table the metrics writers
//                             write (production: the real source, owned elsewhere)
//   createMetricsTable        true: create an empty metrics table with its stream (demo stacks:
//                             nothing writes it unless you do)                     false
//   metricsTableName          the created table's name (only with createMetricsTable)  <prefix>-metrics
//   streamMaxRecordAgeSeconds the stream mapping's maximumRecordAgeInSeconds,       900
//                             60..86400: older records are not broadcast (stale state; the
//                             batch's position goes to the stream DLQ, condition RecordAgeExceeded)
//   streamAlwaysActive        the metrics table is written at least every minute (its writers,  true
//                             the canary): minutes without a processor invocation are an alarm
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
//   The $default route's throttle is sized from the clients' heartbeat: every open dashboard
//   sends {"action":"ping"} every pingIntervalSeconds, so the route carries at least
//   expectedDashboards / pingIntervalSeconds messages/s (100,000 / 60 s = 1,667/s) before any
//   other message; a throttle below that refuses pings (429) and rows expire while connected.
//   expectedDashboards        open dashboards the stack is sized for, 1..10000000   100000
//   pingIntervalSeconds       the clients' ping interval, 1..600                   60
//   routeThrottleHeadroom     factor over the heartbeat rate, 1..10 (reconnect      2
//                             waves, subscribe/snapshot messages)
//   routeThrottleRate         stage default route throttle (overrides the sizing;   max(1000, ceil(
//                             never below the heartbeat rate)                        dashboards / ping
//                                                                                    x headroom))
//   routeThrottleBurst        its burst                                            min(rate, 5000)
//   Pings count against API Gateway's account throttle (10,000 requests/s by default), which
//   PostToConnection shares: 1,000,000 dashboards pinging every 60 s would use 16,667/s alone.
//   connectThrottleRate / connectThrottleBurst  $connect route throttle            500 / 500
//   Broadcast rounds and the posting budget (rounds/src/settings.rs; RUNBOOK "The posting budget
//   and the broadcast modes"). The state table <prefix>-broadcast-state (STATE_TABLE_NAME) holds
//   the pending changes, the round in flight and the budget's lanes; the tick queue
//   <prefix>-ticks (TICK_QUEUE_URL) and the schedule <prefix>-processor-tick wake the processor.
//   broadcastMode             BROADCAST_MODE: rounds (changes merge per entity, one  rounds
//                             round in flight per stage) | batch (every stream batch is a
//                             broadcast at once: the first design, a fallback)
//   postBudgetPerSecond       POST_BUDGET_PER_SECOND (processor and fanout), 0..1000000: posts/s  9000
//                             all fanout invocations together pace to; 0 = unpaced (429s decide).
//                             It shares the account throttle with pings and the account's other APIs
//   roundLeaseSeconds         ROUND_LEASE_SECONDS, 10..3600: how long a round may run before  60
//                             another replaces it, on top of twice its posts' time at the budget
//   roundStuckSeconds         round-stuck's threshold (RoundAge), 60..86400; at least    max(300, lease
//                             roundLeaseSeconds + twice a round to expectedDashboards      + 2 x posting
//                             at the budget + 60 s (the schedule): a round past that         + 60)
//                             should have been replaced by its lease
//   stalenessAlarmSeconds     staleness-high's threshold (Staleness), 1..86400; above the   max(60, 2 x
//                             design's bound, twice a round to expectedDashboards at the   bound)
//                             budget + the stream's 5 s batching window
//   roundsExpiredThreshold    rounds-expired: rounds ended by their lease per 5 min  0
//   Authentication of $connect (RUNBOOK "Turn authentication on or off"; authorizer/src/config.rs):
//   authMode                  none: no authorizer, $connect is open (the seed).   none
//                             jwt: the `authorizer` function, a Lambda REQUEST authorizer,
//                             verifies a JWT from ?token= or Sec-WebSocket-Protocol before
//                             $connect runs. An auth* key below with authMode unset is an error
//                             (an open API by mistake); authMode none keeps them, unused
//   With jwt, at least one key source:
//   authJwtSecretArn          AUTH_JWT_SECRET_ARN: the complete ARN (with its 6-character
//                             suffix) of a Secrets Manager secret in the stack's region whose
//                             SecretString is the HS256 secret, at least 32 bytes. The function
//                             reads it at cold start (secretsmanager:GetSecretValue on exactly
//                             this ARN); the value itself is never in config or the environment
//   authJwtSecretKmsKeyArn    the customer-managed KMS key that encrypts that     unset:
//                             secret (kms:Decrypt on it, for this secret only)    aws/secretsmanager
//   authJwksUrl               AUTH_JWKS_URL, https:// only: RS256/ES256 keys, e.g. a Cognito
//                             pool's https://cognito-idp.{region}.amazonaws.com/{poolId}/.well-known/jwks.json
//   authIssuer                AUTH_ISSUER: the `iss` tokens must carry             unset
//   authAudience              AUTH_AUDIENCE: accepted `aud` values, comma list    unset
//   authIdentitySources       the authorizer's identity sources, comma list, e.g. none
//                             route.request.querystring.token. API Gateway answers 401 without
//                             calling the function unless EVERY one is present, so by default
//                             none: the token may come in the query string or in the
//                             Sec-WebSocket-Protocol header, and the function itself answers
//                             401 when neither has one. Only if every client sends ?token=
//   authSecretGeneration      AUTH_SECRET_GENERATION, 0..1000000000, read by no    unset
//                             code: a new value publishes a new authorizer version whose cold
//                             starts read the secret again (RUNBOOK "Rotate the JWT secret")
//   authorizerMemoryMb / authorizerTimeoutSeconds, 4..29 (the JWKS fetch alone    256 / 5
//                             may take 3 s; API Gateway waits 29 s)
//   apiLoggingLevel           execution logging: ERROR | INFO | OFF                ERROR
//   manageApiGatewayAccount   set the account's API Gateway CloudWatch role (one   false
//                             stack per account and region; a fresh account needs it once)
//   broadcastsEnabled         the stream -> processor mapping is enabled           true
//   deliveriesEnabled         the queue -> fanout mapping is enabled               true
//   snapshotsEnabled          the message function answers {"action":"snapshot"}     true
//                             with the state table's entities (STATE_TABLE_NAME,
//                             WEBSOCKET_API_ENDPOINT); false: it answers ERROR, and has
//                             neither variable nor permission
//   snapshotCacheMs           SNAPSHOT_CACHE_MS, 0..60000: how old a read of the     1000
//                             entities a snapshot may come from (per function instance)
//   alarmEmail                subscribe this address to the alarm topic
//   alarm thresholds: iteratorAgeMaxMs (60000, below streamMaxRecordAgeSeconds), functionErrorsThreshold (0),
//     functionThrottlesThreshold (0), failedDeliveriesPercent (1: Failed / (Delivered + Failed)
//     per 5 min, in %), failedDeliveriesThreshold (10: fewer Failed per 5 min never alarm),
//     requeuedDeliveriesThreshold (10000 per 5 min), deliveryLatencyP99Ms (60000),
//     fanoutQueueAgeMaxSeconds (300), apiIntegrationErrorsThreshold (10),
//     apiExecutionErrorsThreshold (0), apiClientErrorsThreshold (100),
//     authDeniedAlarmThreshold (100: tokens refused with 403 per 5 min, authMode jwt); the
//     rounds' (roundStuckSeconds, stalenessAlarmSeconds, roundsExpiredThreshold) are above
//   canaryEnabled, canaryTimeoutMs, canaryLatencyMaxMs, canaryFailuresThreshold, canaryMemoryMb,
//     canaryLiveVersion: the end-to-end canary's, listed with their defaults at the top of canary.ts

import * as path from "path";

/** Where a setting comes from: `pulumi.Config` in the program, a map in tests. */
export interface ConfigSource {
    get(key: string): string | undefined;
}

export type Architecture = "x86_64" | "arm64";

/**
 * The Lambda binaries (cargo-lambda output `target/lambda/<name>/bootstrap.zip`). `authorizer`
 * is deployed only with authMode jwt: `deployedFunctions` says which ones a stack has.
 */
export const FUNCTION_NAMES = ["connect", "disconnect", "message", "processor", "fanout", "authorizer"] as const;
export type FunctionName = (typeof FUNCTION_NAMES)[number];

/** The alias that API Gateway and the event source mappings invoke; a rollback moves it. */
export const LIVE_ALIAS = "live";

/** API Gateway's hard limit for one WebSocket message. */
export const API_GATEWAY_MAX_MESSAGE_BYTES = 131072;
/** SQS's largest maximum message size. */
export const SQS_MAX_MESSAGE_BYTES = 1048576;
/** The smallest sized $default route throttle (requests/s). */
export const MIN_ROUTE_THROTTLE = 1000;
/** API Gateway's default account-level burst (requests), shared by every API in the region. */
export const API_GATEWAY_ACCOUNT_BURST = 5000;
/** API Gateway's default account-level throttle (requests/s), shared the same way. */
export const API_GATEWAY_ACCOUNT_RATE = 10000;

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

/**
 * The tick queue -> processor mapping. A tick only says "see whether a round should start", so
 * ticks are taken ten at a time and two invocations at most (SQS mappings' minimum) are plenty;
 * the rounds' state is guarded by conditional writes, not by this limit.
 */
export const TICK_MAPPING = {
    batchSize: 10,
    maximumBatchingWindowInSeconds: 0,
    maximumConcurrency: 2,
    /** Receives before a tick goes to the tick DLQ (a tick the processor failed on 5 times). */
    maxReceiveCount: 5,
    /** A day: an older tick asks for nothing the schedule has not done since. */
    retentionSeconds: 86400,
} as const;

/** The safety tick: EventBridge's finest schedule; round-stuck's one-minute periods count on it. */
export const TICK_SCHEDULE = "rate(1 minute)";

/** BROADCAST_MODE (rounds/src/settings.rs `BroadcastMode`). */
export const BROADCAST_MODES = ["rounds", "batch"] as const;
export type BroadcastMode = (typeof BROADCAST_MODES)[number];

/** The connections index's projections the program can keep (RUNBOOK "Move the connections index to INCLUDE"). */
export const INDEX_PROJECTIONS = ["INCLUDE", "KEYS_ONLY", "ALL"] as const;
export type IndexProjection = (typeof INDEX_PROJECTIONS)[number];

/** The modes of $connect authentication (authorizer/src/config.rs `AuthMode`). */
export const AUTH_MODES = ["none", "jwt"] as const;
export type AuthMode = (typeof AUTH_MODES)[number];

/** The retention periods CloudWatch Logs accepts. */
const LOG_RETENTION_DAYS = [1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653];

export interface Settings {
    project: string;
    stack: string;
    /** Prefix of every physical name this stack owns except the tables: `<project>-<stack>`. */
    prefix: string;
    architecture: Architecture;
    artifactsDir: string;
    /** `make package`'s per-commit copy to deploy instead of bootstrap.zip (a rebuild-free redeploy). */
    artifactBuild?: string;
    /** A function's `live` alias pinned to a published version (a rollback); absent: the latest. */
    liveVersions: Partial<Record<FunctionName, number>>;
    logLevel: string;
    logRetentionDays: number;
    connections: {
        tableName: string;
        indexName: string;
        indexProjection: IndexProjection;
        /** While moving to a new index: the old (KEYS_ONLY) index, kept until the switch is done. */
        previousIndexName?: string;
        buckets: number;
        /** The old count while connectionBuckets changes (0: none); see the RUNBOOK. */
        previousBuckets: number;
        ttlSeconds: number;
        /** A ping refreshes the row only when its lastSeenAt is older than this. */
        touchIntervalSeconds: number;
    };
    metrics: { kind: "create"; tableName: string } | { kind: "existing"; streamArn: string };
    stream: {
        /** The stream mapping's maximumRecordAgeInSeconds. */
        maxRecordAgeSeconds: number;
        /** The metrics table is written at least every minute: no invocation means a stop. */
        alwaysActive: boolean;
    };
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
    /** Conflated broadcast rounds and the posting budget (rounds/src/settings.rs). */
    broadcast: {
        mode: BroadcastMode;
        /** POST_BUDGET_PER_SECOND, processor and fanout; 0: unpaced. */
        postBudgetPerSecond: number;
        /** ROUND_LEASE_SECONDS. */
        roundLeaseSeconds: number;
        /** STATE_TABLE_NAME: `<prefix>-broadcast-state`, one per stack (one round in flight per stage). */
        stateTableName: string;
        /** The tick queue's visibility timeout (6x the processor's timeout) and retention. */
        tickQueue: { visibilityTimeoutSeconds: number; retentionSeconds: number; maxReceiveCount: number };
    };
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
        /** The clients' heartbeat the $default throttle is sized from. */
        heartbeat: { dashboards: number; pingIntervalSeconds: number; messagesPerSecond: number; headroom: number };
        throttleRate: number;
        throttleBurst: number;
        connectThrottleRate: number;
        connectThrottleBurst: number;
        loggingLevel: "ERROR" | "INFO" | "OFF";
        manageAccount: boolean;
    };
    /** $connect authentication; `jwt` deploys the authorizer function and the API's authorizer. */
    auth: AuthSettings;
    /** Snapshots on open (the message function; snapshot/src/config.rs). */
    snapshots: { enabled: boolean; cacheMs: number };
    alarms: {
        email?: string;
        iteratorAgeMaxMs: number;
        functionErrors: number;
        functionThrottles: number;
        /** Failed / (Delivered + Failed) over 5 minutes, in percent. */
        failedDeliveriesPercent: number;
        /** Fewer Failed than this in 5 minutes never alarm (small stacks: one slow client). */
        failedDeliveriesMinimum: number;
        requeuedDeliveries: number;
        deliveryLatencyP99Ms: number;
        fanoutQueueAgeMaxSeconds: number;
        apiIntegrationErrors: number;
        apiExecutionErrors: number;
        apiClientErrors: number;
        /** Tokens refused (EMF `Denied` of the authorizer) per 5 minutes. */
        authDenied: number;
        /** round-stuck: RoundAge above this (s) for 2 minutes. */
        roundStuckSeconds: number;
        /** staleness-high: Staleness (Maximum) above this (s) for 3 minutes. */
        stalenessSeconds: number;
        /** rounds-expired: rounds ended by their lease per 5 minutes. */
        roundsExpired: number;
    };
}

export type AuthSettings = { mode: "none" } | JwtAuthSettings;

export interface JwtAuthSettings {
    mode: "jwt";
    /** The Secrets Manager secret holding the HS256 secret: its ARN only, never its value. */
    secretArn?: string;
    /** The customer-managed key that encrypts it (kms:Decrypt granted for this secret only). */
    secretKmsKeyArn?: string;
    jwksUrl?: string;
    issuer?: string;
    /** Accepted `aud` values (AUTH_AUDIENCE, comma-joined). */
    audiences: string[];
    /** The Authorizer's identitySources: empty, the function alone decides (see the header). */
    identitySources: string[];
    /** AUTH_SECRET_GENERATION: bumped to make new cold starts read the secret again. */
    secretGeneration?: number;
    memoryMb: number;
    timeoutSeconds: number;
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
        return this.optionalInt(key, min, max) ?? fallback;
    }

    optionalInt(key: string, min: number, max: number): number | undefined {
        const raw = this.optional(key);
        if (raw === undefined) return undefined;
        if (!/^-?\d+$/.test(raw)) throw new ConfigError(`config ${key}=${JSON.stringify(raw)} is not an integer`);
        return this.inRange(key, raw, Number(raw), min, max);
    }

    /** A decimal number such as `1.5`. */
    number(key: string, fallback: number, min: number, max: number): number {
        const raw = this.optional(key);
        if (raw === undefined) return fallback;
        if (!/^\d+(\.\d+)?$/.test(raw)) throw new ConfigError(`config ${key}=${JSON.stringify(raw)} is not a number`);
        return this.inRange(key, raw, Number(raw), min, max);
    }

    private inRange(key: string, raw: string, value: number, min: number, max: number): number {
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

    /** A comma-separated list, items trimmed, empty items dropped. */
    list(key: string): string[] {
        return (this.optional(key) ?? "")
            .split(",")
            .map((item) => item.trim())
            .filter((item) => item !== "");
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

/**
 * The metrics source. Production names it (the stream of the table the writers write); a new,
 * empty table is created only when asked (demo stacks): a stack that silently created one would
 * listen to a table nobody writes, and no alarm would say so.
 */
function metricsSource(c: Reader, prefix: string): Settings["metrics"] {
    const create = c.bool("createMetricsTable", false);
    const metricsTableName = c.optional("metricsTableName");
    const metricsStreamArn = c.optional("metricsStreamArn");
    if (create && metricsStreamArn !== undefined) {
        throw new ConfigError(
            "set either createMetricsTable true (this stack creates an empty metrics table) or metricsStreamArn (the real table's stream), not both",
        );
    }
    if (metricsStreamArn !== undefined) {
        if (!/^arn:aws[a-z-]*:dynamodb:[^:]+:\d{12}:table\/[^/]+\/stream\/.+$/.test(metricsStreamArn)) {
            throw new ConfigError(`config metricsStreamArn=${JSON.stringify(metricsStreamArn)} is not a DynamoDB stream ARN`);
        }
        if (metricsTableName !== undefined) {
            throw new ConfigError("metricsTableName names a table this stack creates: it goes with createMetricsTable true, not with metricsStreamArn");
        }
        return { kind: "existing", streamArn: metricsStreamArn };
    }
    if (!create) {
        throw new ConfigError(
            metricsTableName !== undefined
                ? "metricsTableName is set but createMetricsTable is not: set createMetricsTable true to create that table (a demo stack), or metricsStreamArn to the real metrics table's stream"
                : "no metrics source: set metricsStreamArn to the stream ARN of the table the metrics writers write (production), or createMetricsTable true to create an empty demo table",
        );
    }
    return { kind: "create", tableName: metricsTableName ?? `${prefix}-metrics` };
}

/** The auth* keys that only mean something with authMode jwt (see `authSettings`). */
const JWT_KEYS = ["authJwtSecretArn", "authJwtSecretKmsKeyArn", "authJwksUrl", "authIssuer", "authAudience", "authIdentitySources"] as const;

/** A Secrets Manager secret's complete ARN: region, account, name and the 6-character suffix. */
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:([a-z0-9-]+):(\d{12}):secret:[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6}$/;
const KMS_KEY_ARN = /^arn:aws[a-z-]*:kms:([a-z0-9-]+):\d{12}:key\/[A-Za-z0-9-]+$/;
/** What API Gateway accepts as a WebSocket REQUEST authorizer's identity source. */
const IDENTITY_SOURCE = /^(route\.request\.(header|querystring)\.[A-Za-z0-9._-]+|stageVariables\.[A-Za-z0-9._-]+|context\.[A-Za-z0-9._-]+)$/;

/**
 * authJwtSecretArn: the ARN, and nothing else. Checked whatever authMode says: a value that is
 * not an ARN may be the secret itself, pasted in the wrong place, and is never echoed.
 */
function jwtSecretArn(c: Reader): string | undefined {
    const secretArn = c.optional("authJwtSecretArn");
    if (secretArn !== undefined && !SECRET_ARN.test(secretArn)) {
        throw new ConfigError(
            secretArn.startsWith("arn:")
                ? `config authJwtSecretArn=${JSON.stringify(secretArn)} is not the complete ARN of a Secrets Manager secret (arn:aws:secretsmanager:<region>:<account>:secret:<name>-<6 characters>): \`aws secretsmanager describe-secret --secret-id <name> --query ARN\` prints it`
                : "config authJwtSecretArn is not an ARN (its value is not shown: it may be the secret itself). It takes the ARN of a Secrets Manager secret that holds the HS256 secret; the secret's value never goes into Pulumi config. If a secret value was set here, remove it (`pulumi config rm authJwtSecretArn`) and rotate that secret: it is in the stack's config history",
        );
    }
    return secretArn;
}

/**
 * $connect authentication. authMode defaults to none (the seed's open $connect); but a stack
 * that names a key source without saying authMode would deploy an open API while its owner
 * believes it authenticates, so that is an error, and authMode none must then be explicit.
 */
function authSettings(c: Reader): AuthSettings {
    const explicit = c.optional("authMode");
    const mode = c.oneOf<AuthMode>("authMode", "none", AUTH_MODES);
    const secretArn = jwtSecretArn(c);
    if (mode === "none") {
        const set = JWT_KEYS.filter((key) => c.optional(key) !== undefined);
        if (explicit === undefined && set.length > 0) {
            throw new ConfigError(
                `${set.join(", ")} ${set.length === 1 ? "is" : "are"} set but authMode is not: set authMode jwt to authenticate $connect, or authMode none to keep ${set.length === 1 ? "it" : "them"} unused (an open $connect)`,
            );
        }
        return { mode };
    }

    const secretKmsKeyArn = c.optional("authJwtSecretKmsKeyArn");
    if (secretKmsKeyArn !== undefined) {
        if (secretArn === undefined) {
            throw new ConfigError("authJwtSecretKmsKeyArn is the key of the secret authJwtSecretArn names: set authJwtSecretArn too, or remove it");
        }
        const key = KMS_KEY_ARN.exec(secretKmsKeyArn);
        if (key === null) {
            throw new ConfigError(`config authJwtSecretKmsKeyArn=${JSON.stringify(secretKmsKeyArn)} is not a KMS key ARN (arn:aws:kms:<region>:<account>:key/<key id>; an alias does not work in IAM)`);
        }
        const secretRegion = SECRET_ARN.exec(secretArn)![1];
        if (key[1] !== secretRegion) {
            throw new ConfigError(`authJwtSecretKmsKeyArn is in ${key[1]}, the secret in ${secretRegion}: Secrets Manager encrypts a secret with a key of its own region`);
        }
    }

    const jwksUrl = c.optional("authJwksUrl");
    if (jwksUrl !== undefined) {
        let url: URL | undefined;
        try {
            url = new URL(jwksUrl);
        } catch {
            url = undefined;
        }
        // Keys over TLS only: the function refuses plain http except to loopback, which a
        // Lambda function cannot reach anyway.
        if (url === undefined || url.protocol !== "https:") {
            throw new ConfigError(`config authJwksUrl=${JSON.stringify(jwksUrl)} is not an https:// URL`);
        }
    }
    if (secretArn === undefined && jwksUrl === undefined) {
        throw new ConfigError(
            "authMode jwt needs a key source: authJwtSecretArn (a Secrets Manager secret holding the HS256 secret) and/or authJwksUrl (RS256/ES256 keys, e.g. a Cognito user pool's .well-known/jwks.json)",
        );
    }

    const identitySources = c.list("authIdentitySources");
    for (const source of identitySources) {
        if (!IDENTITY_SOURCE.test(source)) {
            throw new ConfigError(
                `config authIdentitySources: ${JSON.stringify(source)} is not a WebSocket identity source (route.request.querystring.<name>, route.request.header.<name>, stageVariables.<name> or context.<name>)`,
            );
        }
    }
    // API Gateway calls the function only when every source is present: a client that sends its
    // token in the query string never sends it as a subprotocol too, so it would always get 401.
    const inQuery = identitySources.some((s) => s.startsWith("route.request.querystring."));
    const inProtocol = identitySources.some((s) => s.toLowerCase() === "route.request.header.sec-websocket-protocol");
    if (inQuery && inProtocol) {
        throw new ConfigError(
            "authIdentitySources lists a query string parameter and the Sec-WebSocket-Protocol header: API Gateway requires every listed source, and a client sends its token one way; list one, or none (the default: the function accepts either)",
        );
    }

    return {
        mode,
        secretArn,
        secretKmsKeyArn,
        jwksUrl,
        issuer: c.optional("authIssuer"),
        audiences: c.list("authAudience"),
        identitySources,
        secretGeneration: c.optionalInt("authSecretGeneration", 0, 1000000000),
        // A small function: it verifies a signature (and, on a cold start or a new kid, fetches
        // keys); 256 MB gives its TLS and RSA work more CPU than 128 MB for the same price per ms.
        memoryMb: c.int("authorizerMemoryMb", 256, 128, 10240),
        // API Gateway gives up on an authorizer after 29 s; the JWKS fetch is bounded at 3 s.
        timeoutSeconds: c.int("authorizerTimeoutSeconds", 5, 4, 29),
    };
}

/**
 * The stage's default route throttle, sized from the clients' heartbeat (see the header): at
 * least the ping rate itself, headroom on top unless routeThrottleRate overrides it.
 */
function routeThrottle(c: Reader): Pick<Settings["api"], "heartbeat" | "throttleRate" | "throttleBurst"> {
    const dashboards = c.int("expectedDashboards", 100000, 1, 10000000);
    const pingIntervalSeconds = c.int("pingIntervalSeconds", 60, 1, 600);
    const headroom = c.number("routeThrottleHeadroom", 2, 1, 10);
    const messagesPerSecond = Math.ceil(dashboards / pingIntervalSeconds);
    // Never below 1000/s, the limit before this sizing: a small stack's developers click too.
    const sized = Math.max(MIN_ROUTE_THROTTLE, Math.ceil((dashboards * headroom) / pingIntervalSeconds));
    const throttleRate = c.optionalInt("routeThrottleRate", 1, 100000) ?? sized;
    if (throttleRate > 100000) {
        throw new ConfigError(
            `the $default route throttle sized from expectedDashboards=${dashboards}, pingIntervalSeconds=${pingIntervalSeconds} and routeThrottleHeadroom=${headroom} is ${sized}/s, above 100000/s: raise pingIntervalSeconds`,
        );
    }
    if (throttleRate < messagesPerSecond) {
        throw new ConfigError(
            `routeThrottleRate=${throttleRate} is below the clients' own heartbeat: ${dashboards} dashboards pinging every ${pingIntervalSeconds} s send ${messagesPerSecond} messages/s; set it to at least that (with headroom), or leave it unset`,
        );
    }
    const throttleBurst = c.int("routeThrottleBurst", Math.min(throttleRate, API_GATEWAY_ACCOUNT_BURST), 1, 100000);
    return { heartbeat: { dashboards, pingIntervalSeconds, messagesPerSecond, headroom }, throttleRate, throttleBurst };
}

/**
 * Rounds and the posting budget, and the thresholds of their alarms, which scale with the fleet:
 * a round to every expected dashboard posts for dashboards / budget seconds (unpaced, at the
 * account throttle). Defaults are sized from that; a threshold the design itself reaches on
 * normal load is an error, as it would page for nothing.
 */
function broadcastSettings(
    c: Reader,
    prefix: string,
    dashboards: number,
    processorTimeoutSeconds: number,
): { broadcast: Settings["broadcast"]; alarms: Pick<Settings["alarms"], "roundStuckSeconds" | "stalenessSeconds" | "roundsExpired"> } {
    const mode = c.oneOf<BroadcastMode>("broadcastMode", "rounds", BROADCAST_MODES);
    const postBudgetPerSecond = c.int("postBudgetPerSecond", 9000, 0, 1000000);
    const roundLeaseSeconds = c.int("roundLeaseSeconds", 60, 10, 3600);
    const rate = postBudgetPerSecond > 0 ? postBudgetPerSecond : API_GATEWAY_ACCOUNT_RATE;
    const pace = postBudgetPerSecond > 0 ? `postBudgetPerSecond ${postBudgetPerSecond}/s` : `the account throttle (${API_GATEWAY_ACCOUNT_RATE}/s, unpaced)`;
    // rounds/src/round.rs `lease_until`: the base lease plus twice the round's posting time. A
    // round past its lease is replaced at the next tick: its lease tick, or the schedule's a
    // minute later at most. RoundAge beyond that means the replacement itself is not happening.
    const twoRounds = Math.ceil((2 * dashboards) / rate);
    const replacedWithin = roundLeaseSeconds + twoRounds + 60;
    const roundStuckSeconds = c.int("roundStuckSeconds", Math.max(300, replacedWithin), 60, 86400);
    if (roundStuckSeconds < replacedWithin) {
        throw new ConfigError(
            `roundStuckSeconds=${roundStuckSeconds} is below ${replacedWithin} s, the longest a round runs before another replaces it: roundLeaseSeconds (${roundLeaseSeconds}) + twice a round to expectedDashboards (${dashboards}) at ${pace} (${twoRounds} s) + 60 s for the schedule's tick. round-stuck would page for rounds their lease is about to end (rounds-expired reports those); raise it`,
        );
    }
    // A change that comes just after a round started waits for that round and then its own,
    // after the stream mapping's batching window: the bound rounds are designed to keep.
    const stalenessBound = twoRounds + STREAM_MAPPING.maximumBatchingWindowInSeconds;
    const stalenessSeconds = c.int("stalenessAlarmSeconds", Math.max(60, 2 * stalenessBound), 1, 86400);
    if (stalenessSeconds <= stalenessBound) {
        throw new ConfigError(
            `stalenessAlarmSeconds=${stalenessSeconds} is not above ${stalenessBound} s, the staleness rounds reach on normal load at expectedDashboards (${dashboards}) and ${pace}: twice a round's posting time (${twoRounds} s) + the stream's ${STREAM_MAPPING.maximumBatchingWindowInSeconds} s batching window. staleness-high would page for a healthy stack; raise it`,
        );
    }
    return {
        broadcast: {
            mode,
            postBudgetPerSecond,
            roundLeaseSeconds,
            stateTableName: `${prefix}-broadcast-state`,
            tickQueue: {
                // Above the processor's timeout, six times as for the fan-out queue (AWS's advice
                // for SQS event sources); a tick retried late costs nothing, the schedule runs meanwhile.
                visibilityTimeoutSeconds: Math.min(6 * processorTimeoutSeconds, 43200),
                retentionSeconds: TICK_MAPPING.retentionSeconds,
                maxReceiveCount: TICK_MAPPING.maxReceiveCount,
            },
        },
        alarms: {
            roundStuckSeconds,
            stalenessSeconds,
            roundsExpired: c.int("roundsExpiredThreshold", 0, 0, 100000000),
        },
    };
}

export function loadSettings(source: ConfigSource, project: string, stack: string): Settings {
    const c = new Reader(source);
    const prefix = `${project}-${stack}`;

    const metrics = metricsSource(c, prefix);

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

    const processorTimeoutSeconds = c.int("processorTimeoutSeconds", 300, 10, 900);
    // Metrics are state: a change that waited longer than this behind an outage has usually been
    // superseded, and broadcasting a backlog of them to every dashboard spends the fan-out's
    // whole budget on old values (the stream keeps 24 h). 15 minutes is three processor timeouts,
    // so a failing batch is still retried (bisected) before it expires; an expired batch is not
    // lost silently: its shard and sequence range go to the stream DLQ (RecordAgeExceeded) and
    // stream-dlq-depth alarms.
    const maxRecordAgeSeconds = c.int("streamMaxRecordAgeSeconds", 900, 60, 86400);
    const iteratorAgeMaxMs = c.int("iteratorAgeMaxMs", 60000, 1000, 86400000);
    if (iteratorAgeMaxMs >= maxRecordAgeSeconds * 1000) {
        throw new ConfigError(
            `iteratorAgeMaxMs (${iteratorAgeMaxMs}) must be below streamMaxRecordAgeSeconds (${maxRecordAgeSeconds} s): the alarm must fire before records start to be dropped`,
        );
    }

    const artifactBuild = c.optional("artifactBuild");
    if (artifactBuild !== undefined && !/^[0-9a-f]{7,40}(-dirty)?$/.test(artifactBuild)) {
        throw new ConfigError(`config artifactBuild=${JSON.stringify(artifactBuild)} is not a git commit as \`make package\` names its copies`);
    }
    const MAX_VERSION = 1000000000;
    const pinned: Record<FunctionName, number | undefined> = {
        connect: c.optionalInt("connectLiveVersion", 1, MAX_VERSION),
        disconnect: c.optionalInt("disconnectLiveVersion", 1, MAX_VERSION),
        message: c.optionalInt("messageLiveVersion", 1, MAX_VERSION),
        processor: c.optionalInt("processorLiveVersion", 1, MAX_VERSION),
        fanout: c.optionalInt("fanoutLiveVersion", 1, MAX_VERSION),
        authorizer: c.optionalInt("authorizerLiveVersion", 1, MAX_VERSION),
    };
    const liveVersions: Settings["liveVersions"] = {};
    for (const fn of FUNCTION_NAMES) {
        const version = pinned[fn];
        if (version !== undefined) liveVersions[fn] = version;
    }

    const connectionTtlSeconds = c.int("connectionTtlSeconds", 86400, 60, 7 * 86400);
    const touchIntervalSeconds = c.int("connectionTouchIntervalSeconds", 300, 0, 3600);
    if (connectionTtlSeconds <= touchIntervalSeconds) {
        // The functions refuse to start then: a row could expire between two refreshes.
        throw new ConfigError(
            `config connectionTtlSeconds=${connectionTtlSeconds} must be above connectionTouchIntervalSeconds=${touchIntervalSeconds}`,
        );
    }

    const throttle = routeThrottle(c);
    const rounds = broadcastSettings(c, prefix, throttle.heartbeat.dashboards, processorTimeoutSeconds);

    const settings: Settings = {
        project,
        stack,
        prefix,
        architecture: c.oneOf<Architecture>("architecture", "x86_64", ["x86_64", "arm64"]),
        artifactsDir: path.resolve(c.string("artifactsDir", path.join(__dirname, "..", "target", "lambda"))),
        artifactBuild,
        liveVersions,
        logLevel: c.string("logLevel", "info"),
        logRetentionDays: c.intOneOf("logRetentionDays", 30, LOG_RETENTION_DAYS),
        connections: {
            tableName: c.string("connectionsTableName", "iops-dashboard-websocket-connections"),
            indexName: c.string("connectionsIndexName", "connected-connectedAt-index"),
            indexProjection: c.oneOf<IndexProjection>("connectionsIndexProjection", "INCLUDE", INDEX_PROJECTIONS),
            ...previousIndex(c),
            buckets: c.int("connectionBuckets", 1, 1, 1000),
            previousBuckets: c.int("connectionBucketsPrevious", 0, 0, 1000),
            ttlSeconds: connectionTtlSeconds,
            touchIntervalSeconds,
        },
        metrics,
        stream: {
            maxRecordAgeSeconds,
            alwaysActive: c.bool("streamAlwaysActive", true),
        },
        registryFunctions: {
            memoryMb: c.int("registryMemoryMb", 256, 128, 10240),
            timeoutSeconds: c.int("registryTimeoutSeconds", 10, 1, 29),
        },
        processor: {
            memoryMb: c.int("processorMemoryMb", 512, 128, 10240),
            timeoutSeconds: processorTimeoutSeconds,
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
        broadcast: rounds.broadcast,
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
            ...throttle,
            connectThrottleRate: c.int("connectThrottleRate", 500, 1, 100000),
            connectThrottleBurst: c.int("connectThrottleBurst", 500, 1, 100000),
            loggingLevel: c.oneOf("apiLoggingLevel", "ERROR", ["ERROR", "INFO", "OFF"] as const),
            manageAccount: c.bool("manageApiGatewayAccount", false),
        },
        auth: authSettings(c),
        snapshots: {
            enabled: c.bool("snapshotsEnabled", true),
            cacheMs: c.int("snapshotCacheMs", 1000, 0, 60000),
        },
        alarms: {
            email: c.optional("alarmEmail"),
            iteratorAgeMaxMs,
            functionErrors: c.int("functionErrorsThreshold", 0, 0, 1000000),
            functionThrottles: c.int("functionThrottlesThreshold", 0, 0, 1000000),
            failedDeliveriesPercent: c.number("failedDeliveriesPercent", 1, 0, 100),
            failedDeliveriesMinimum: c.int("failedDeliveriesThreshold", 10, 0, 100000000),
            requeuedDeliveries: c.int("requeuedDeliveriesThreshold", 10000, 0, 100000000),
            deliveryLatencyP99Ms: c.int("deliveryLatencyP99Ms", 60000, 1, 3600000),
            // At most the fan-out queue's retention (4 days).
            fanoutQueueAgeMaxSeconds: c.int("fanoutQueueAgeMaxSeconds", 300, 60, 4 * 86400),
            apiIntegrationErrors: c.int("apiIntegrationErrorsThreshold", 10, 0, 100000000),
            apiExecutionErrors: c.int("apiExecutionErrorsThreshold", 0, 0, 100000000),
            apiClientErrors: c.int("apiClientErrorsThreshold", 100, 0, 100000000),
            authDenied: c.int("authDeniedAlarmThreshold", 100, 0, 100000000),
            ...rounds.alarms,
        },
    };
    if (settings.connections.indexProjection === "KEYS_ONLY" && settings.auth.mode === "jwt") {
        throw new ConfigError(
            "connectionsIndexProjection KEYS_ONLY with authMode jwt: the index would not carry allowedEntityTypes, so a token's entity types would not limit what broadcasts deliver; move the index to INCLUDE first (RUNBOOK \"Move the connections index to INCLUDE\")",
        );
    }
    if (settings.connections.previousIndexName === settings.connections.indexName) {
        throw new ConfigError(
            `config connectionsIndexPrevious=${JSON.stringify(settings.connections.indexName)} is connectionsIndexName itself: it names the old index while connectionsIndexName names the new one`,
        );
    }
    if (!/^[A-Za-z0-9_]{1,128}$/.test(settings.api.stageName)) {
        throw new ConfigError(`config stageName=${JSON.stringify(settings.api.stageName)} may hold only letters, digits and _`);
    }
    return settings;
}

/** `connectionsIndexPrevious`, when set. */
function previousIndex(c: Reader): { previousIndexName?: string } {
    const name = c.optional("connectionsIndexPrevious");
    return name === undefined ? {} : { previousIndexName: name };
}

/**
 * Whether rounds run: broadcastMode rounds with broadcasts on. Only then is the schedule enabled,
 * and only then does round-stuck count its silence.
 */
export function roundsActive(settings: Settings): boolean {
    return settings.broadcast.mode === "rounds" && settings.switches.broadcasts;
}

/** The functions this stack deploys: the authorizer only with authMode jwt. */
export function deployedFunctions(settings: Settings): FunctionName[] {
    return FUNCTION_NAMES.filter((fn) => fn !== "authorizer" || settings.auth.mode === "jwt");
}

/** Physical names, all derived here so that RUNBOOK.md can name them exactly. */
export function functionName(settings: Settings, fn: FunctionName): string {
    return `${settings.prefix}-${fn}`;
}

export function functionLogGroupName(settings: Settings, fn: FunctionName): string {
    return `/aws/lambda/${functionName(settings, fn)}`;
}

export function queueNames(settings: Settings): { fanout: string; fanoutDlq: string; streamDlq: string; ticks: string; ticksDlq: string } {
    return {
        fanout: `${settings.prefix}-fanout`,
        fanoutDlq: `${settings.prefix}-fanout-dlq`,
        streamDlq: `${settings.prefix}-stream-dlq`,
        ticks: `${settings.prefix}-ticks`,
        ticksDlq: `${settings.prefix}-ticks-dlq`,
    };
}

/** The schedule that invokes the processor every minute (the rounds' safety tick). */
export function tickScheduleName(settings: Settings): string {
    return `${settings.prefix}-processor-tick`;
}
