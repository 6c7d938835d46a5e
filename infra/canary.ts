// The end-to-end canary (canary/, the `canary` zip): every minute an EventBridge schedule invokes
// it; it connects to the stage as a dashboard does, writes a heartbeat entity (`canary-heartbeat`,
// entity_type `canary`) to the metrics table, and times how long that write takes to come back
// over its own WebSocket as a METRICS_UPDATE. Every stage of the pipeline lies on that path
// (API Gateway and $connect, the table's stream and its mapping, the processor, the fan-out queue
// and its mapping, the fanout, PostToConnection), so whichever stops, no latency is measured:
// `CanaryLatency` goes missing, and canary-latency treats missing data as breaching. Silence pages.
//
// Keys (namespace `iops-ws:`), all optional:
//   canaryEnabled            deploy the canary, its schedule and its two alarms     true
//   canaryTimeoutMs          CANARY_TIMEOUT_MS: how long a run waits for its update, 20000
//                            5000..25000 (the handshake may take as long again; the
//                            function's timeout is twice this plus 5 s, under the minute)
//   canaryLatencyMaxMs       canary-latency's threshold: the slowest round trip of   15000
//                            each minute, for 3 minutes; below canaryTimeoutMs
//   canaryFailuresThreshold  canary-failures: heartbeats lost in 15 minutes while     2
//                            others still arrive (intermittent loss)
//   canaryMemoryMb           128
//   canaryLiveVersion        pin the alias `live` to this version (RUNBOOK "Roll back a deploy")
// With authMode jwt the canary signs its own token with the authorizer's HS256 secret
// (authJwtSecretArn, read on every run so a rotation never strands it); a stack that verifies
// JWKS keys only has no secret to sign with and must set canaryEnabled false.
//
// While broadcasts or deliveries are switched off on purpose (RUNBOOK "Disable broadcasts") the
// schedule is disabled too, and canary-latency no longer counts silence.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { AlarmSpec, MetricRef } from "./alarms";
import { checkedArtifact } from "./artifacts";
import { authorizerStatements } from "./authorizer";
import { emf, MetricName } from "./catalogue";
import { ConfigError, ConfigSource, LIVE_ALIAS, Settings } from "./config";
import { Environment, jsonLogging } from "./functions";
import { allow, lambdaRole, ownLogGroup } from "./iam";

/** The zip `make package` builds (target/lambda/canary/bootstrap.zip) and the function's suffix. */
export const CANARY = "canary";
/** The heartbeat's key in the metrics table (canary/src/config.rs DEFAULT_ENTITY_ID). */
export const HEARTBEAT_ENTITY_ID = "canary-heartbeat";
/** EventBridge's finest schedule; the alarms' one-minute periods count on it. */
export const SCHEDULE = "rate(1 minute)";

export interface CanarySettings {
    timeoutMs: number;
    latencyMaxMs: number;
    failuresThreshold: number;
    memoryMb: number;
    liveVersion?: number;
    /** Broadcasts or deliveries are off on purpose: no heartbeat can come back. */
    paused: boolean;
}

/** An integer key within [min, max], or undefined when unset (config.ts's rules and messages). */
function optionalInt(source: ConfigSource, key: string, min: number, max: number): number | undefined {
    const raw = source.get(key)?.trim();
    if (raw === undefined || raw === "") return undefined;
    if (!/^\d+$/.test(raw)) throw new ConfigError(`config ${key}=${JSON.stringify(raw)} is not an integer`);
    const value = Number(raw);
    if (value < min || value > max) throw new ConfigError(`config ${key}=${raw} must be between ${min} and ${max}`);
    return value;
}

function int(source: ConfigSource, key: string, fallback: number, min: number, max: number): number {
    return optionalInt(source, key, min, max) ?? fallback;
}

/** The canary's settings, or undefined when `canaryEnabled` is false. */
export function canarySettings(source: ConfigSource, settings: Settings): CanarySettings | undefined {
    const enabled = source.get("canaryEnabled")?.trim();
    if (enabled !== undefined && enabled !== "" && enabled !== "true" && enabled !== "false") {
        throw new ConfigError(`config canaryEnabled=${JSON.stringify(enabled)} must be true or false`);
    }
    if (enabled === "false") return undefined;
    if (settings.auth.mode === "jwt" && settings.auth.secretArn === undefined) {
        throw new ConfigError(
            "the canary signs its own token with the HS256 secret (authJwtSecretArn), and this stack verifies JWKS keys only: set authJwtSecretArn, or canaryEnabled false (no end-to-end canary)",
        );
    }
    const timeoutMs = int(source, "canaryTimeoutMs", 20000, 5000, 25000);
    const latencyMaxMs = int(source, "canaryLatencyMaxMs", Math.min(15000, timeoutMs - 1000), 1000, 25000);
    if (latencyMaxMs >= timeoutMs) {
        // A slower round trip is a failure, never a latency: the threshold could not be reached.
        throw new ConfigError(`config canaryLatencyMaxMs (${latencyMaxMs}) must be below canaryTimeoutMs (${timeoutMs})`);
    }
    return {
        timeoutMs,
        latencyMaxMs,
        failuresThreshold: int(source, "canaryFailuresThreshold", 2, 0, 15),
        memoryMb: int(source, "canaryMemoryMb", 128, 128, 10240),
        liveVersion: optionalInt(source, "canaryLiveVersion", 1, 1000000000),
        paused: !settings.switches.broadcasts || !settings.switches.deliveries,
    };
}

/** canary/src/config.rs `CanaryConfig`: the stage, the table, and the token's secret. */
export function canaryEnvironment(
    settings: Settings,
    canary: CanarySettings,
    websocketUrl: pulumi.Input<string>,
    metricsTableName: pulumi.Input<string>,
): Environment {
    const env: Environment = {
        RUST_LOG: settings.logLevel,
        // The `Stage` dimension of CanaryLatency and CanaryFailures, which the alarms read.
        STAGE: settings.api.stageName,
        CANARY_WS_URL: websocketUrl,
        METRICS_TABLE_NAME: metricsTableName,
        CANARY_ENTITY_ID: HEARTBEAT_ENTITY_ID,
        CANARY_TIMEOUT_MS: String(canary.timeoutMs),
    };
    const auth = settings.auth;
    if (auth.mode === "jwt") {
        env.AUTH_MODE = "jwt";
        // The ARN only: the function reads the value on every run.
        if (auth.secretArn !== undefined) env.AUTH_JWT_SECRET_ARN = auth.secretArn;
        if (auth.issuer !== undefined) env.AUTH_ISSUER = auth.issuer;
        if (auth.audiences.length > 0) env.AUTH_AUDIENCE = auth.audiences.join(",");
    }
    return env;
}

/** The metrics table (its name and ARN) of a stream ARN: `<table ARN>/stream/<label>`. */
export function tableOfStream(streamArn: pulumi.Input<string>): { name: pulumi.Output<string>; arn: pulumi.Output<string> } {
    const arn = pulumi.output(streamArn).apply((s) => {
        const m = /^(arn:[^:]+:dynamodb:[^:]*:\d*:table\/([^/]+))\/stream\/[^/]+$/.exec(s);
        if (m === null) throw new ConfigError(`${s} is not a DynamoDB stream ARN`);
        return m[1];
    });
    return { arn, name: arn.apply((a) => a.slice(a.indexOf(":table/") + ":table/".length)) };
}

export function canaryAlarmSpecs(settings: Settings, canary: CanarySettings): AlarmSpec[] {
    const metric = (name: MetricName<"canary">, stat: string): MetricRef => ({ ...emf(settings.api.stageName, "canary", name), stat });
    return [
        {
            name: "canary-latency",
            description: `No heartbeat of the canary came back over the WebSocket for 3 minutes, or the slowest took more than ${canary.latencyMaxMs} ms: a stage of the pipeline is silent or slow, and dashboards are not updating.`,
            metric: metric("CanaryLatency", "Maximum"),
            period: 60,
            evaluationPeriods: 3,
            datapointsToAlarm: 3,
            threshold: canary.latencyMaxMs,
            comparisonOperator: "GreaterThanThreshold",
            // CanaryLatency exists only for a heartbeat that came back, so no data means that
            // none did (or that the canary did not run): the pipeline is silent. That is what
            // this alarm is for, so missing data breaches, unless the switches are off on purpose.
            treatMissingData: canary.paused ? "notBreaching" : "breaching",
        },
        {
            name: "canary-failures",
            description: `More than ${canary.failuresThreshold} of the canary's heartbeats were lost in 15 minutes while others came back: some updates do not reach dashboards.`,
            math: {
                metrics: { failed: metric("CanaryFailures", "Sum"), arrived: metric("CanaryLatency", "SampleCount") },
                steps: { f: "FILL(failed, 0)", a: "FILL(arrived, 0)" },
                // Only while some arrive: when none does, canary-latency pages already.
                expression: "IF(a > 0, f, 0)",
                label: "heartbeats lost while others arrived",
            },
            period: 900,
            evaluationPeriods: 1,
            datapointsToAlarm: 1,
            threshold: canary.failuresThreshold,
            comparisonOperator: "GreaterThanThreshold",
            // No run, or no arrival: canary-latency's to see.
            treatMissingData: "notBreaching",
        },
    ];
}

export interface Canary {
    name: string;
    function: aws.lambda.Function;
    alias: aws.lambda.Alias;
    role: aws.iam.Role;
    policy: aws.iam.RolePolicy;
    logGroup: aws.cloudwatch.LogGroup;
    schedule: aws.cloudwatch.EventRule;
    alarms: AlarmSpec[];
}

/**
 * The canary function, built as rustFunction (functions.ts) builds the pipeline's (a log group
 * first, a role of its own, a version per change behind `live`), and its schedule. It is not one
 * of FUNCTION_NAMES: it carries no part of the pipeline, so it is not in the pipeline's error and
 * throttle alarms; canary-latency sees any failure of it as silence.
 */
export function canary(
    settings: Settings,
    canary: CanarySettings,
    targets: { websocketUrl: pulumi.Input<string>; metricsStreamArn: pulumi.Input<string> },
): Canary {
    const name = `${settings.prefix}-${CANARY}`;
    const artifact = checkedArtifact(settings, CANARY);
    const table = tableOfStream(targets.metricsStreamArn);

    const logGroup = new aws.cloudwatch.LogGroup(CANARY, {
        name: `/aws/lambda/${name}`,
        retentionInDays: settings.logRetentionDays,
    });
    const statements = [
        ownLogGroup(logGroup.arn),
        // Its own item only: the canary cannot overwrite a real entity.
        allow("WriteHeartbeat", ["dynamodb:PutItem"], [table.arn], {
            "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": HEARTBEAT_ENTITY_ID },
        }),
        ...(settings.auth.mode === "jwt" ? authorizerStatements(settings.auth) : []),
    ];
    const { role, policy } = lambdaRole(CANARY, name, statements);

    const fn = new aws.lambda.Function(
        CANARY,
        {
            name,
            description: `${name} build ${artifact.build ?? "unknown"} ${settings.architecture}`,
            runtime: "provided.al2023",
            handler: "bootstrap",
            architectures: [settings.architecture],
            code: new pulumi.asset.FileArchive(artifact.zip),
            role: role.arn,
            memorySize: canary.memoryMb,
            // The handshake and the wait, each up to the run's timeout, and the close: under the
            // schedule's minute, so two runs never overlap.
            timeout: Math.ceil((2 * canary.timeoutMs) / 1000) + 5,
            environment: { variables: canaryEnvironment(settings, canary, targets.websocketUrl, table.name) },
            loggingConfig: jsonLogging(settings, logGroup),
            publish: true,
        },
        { dependsOn: [logGroup, policy] },
    );
    const alias = new aws.lambda.Alias(CANARY, {
        name: LIVE_ALIAS,
        functionName: fn.name,
        functionVersion: canary.liveVersion !== undefined ? String(canary.liveVersion) : fn.version,
        description: `What the canary's schedule invokes; RUNBOOK "Roll back a deploy" moves it`,
    });
    // A failed or late run is not retried: the next one comes within the minute.
    new aws.lambda.FunctionEventInvokeConfig(CANARY, {
        functionName: fn.name,
        qualifier: alias.name,
        maximumRetryAttempts: 0,
        maximumEventAgeInSeconds: 60,
    });

    const schedule = new aws.cloudwatch.EventRule(CANARY, {
        name,
        description: "Runs the end-to-end canary (RUNBOOK.md, canary-latency)",
        scheduleExpression: SCHEDULE,
        state: canary.paused ? "DISABLED" : "ENABLED",
    });
    const permission = new aws.lambda.Permission(CANARY, {
        action: "lambda:InvokeFunction",
        function: fn.name,
        qualifier: alias.name,
        principal: "events.amazonaws.com",
        sourceArn: schedule.arn,
    });
    new aws.cloudwatch.EventTarget(
        CANARY,
        {
            rule: schedule.name,
            arn: alias.arn,
            retryPolicy: { maximumRetryAttempts: 0, maximumEventAgeInSeconds: 60 },
        },
        // EventBridge may invoke the alias from its first event on.
        { dependsOn: [permission] },
    );

    return { name, function: fn, alias, role, policy, logGroup, schedule, alarms: canaryAlarmSpecs(settings, canary) };
}
