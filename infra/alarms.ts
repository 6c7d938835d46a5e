// Every alarm, to one SNS topic. Each alarm's logical name (`spec.name`) is the heading of its
// section in RUNBOOK.md and the suffix of its CloudWatch name `<prefix>-<name>`; a test checks
// both directions. Alarms on the functions' own metrics take their names from metrics.json and
// carry every catalogue dimension (Service and this stack's Stage).
//
// Missing data is decided per alarm (`treatMissingData`, with the reason beside it), because no
// data means different things: for a Lambda error count it means no invocation, hence no error;
// for a queue metric it means SQS stopped publishing (an inactive queue, which may still hold
// messages); for the processor's IteratorAge on a stream that is always written it means the
// pipeline has stopped.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { emf, MetricName } from "./catalogue";
import { deployedFunctions, functionName, queueNames, roundsActive, Settings } from "./config";

/** One metric with the statistic an alarm or a graph reads it with (`Sum`, `Maximum`, `p99`...). */
export interface MetricRef {
    namespace: string;
    metricName: string;
    dimensions: Record<string, pulumi.Input<string>>;
    stat: string;
}

/** A metric-math alarm: named metrics, intermediate expressions, and the expression alarmed on. */
export interface MathSpec {
    /** Query id (a lowercase word) -> metric. */
    metrics: Record<string, MetricRef>;
    /** Helper expressions, in order (id -> expression), not alarmed on themselves. */
    steps?: Record<string, string>;
    /** The alarmed expression. */
    expression: string;
    /** Its label on the graph. */
    label: string;
}

export type TreatMissingData = "notBreaching" | "breaching" | "ignore" | "missing";

interface SpecCommon {
    /** Stable logical name: the RUNBOOK.md heading. */
    name: string;
    description: string;
    period: number;
    evaluationPeriods: number;
    datapointsToAlarm: number;
    threshold: number;
    comparisonOperator: "GreaterThanThreshold";
    treatMissingData: TreatMissingData;
}

export type AlarmSpec = SpecCommon & ({ metric: MetricRef; math?: undefined } | { math: MathSpec; metric?: undefined });

export interface AlarmTargets {
    apiId: pulumi.Input<string>;
    stageName: string;
}

/** Every metric an alarm reads (one, or the metric-math inputs). */
export function alarmMetrics(spec: AlarmSpec): MetricRef[] {
    return spec.metric !== undefined ? [spec.metric] : Object.values(spec.math.metrics);
}

export function alarmSpecs(settings: Settings, targets: AlarmTargets): AlarmSpec[] {
    const t = settings.alarms;
    const stage = settings.api.stageName;
    const queues = queueNames(settings);
    const lambda = (fn: string, metricName: string, stat: string): MetricRef => ({
        namespace: "AWS/Lambda",
        metricName,
        dimensions: { FunctionName: fn },
        stat,
    });
    const sqs = (queue: string, metricName: string, stat: string): MetricRef => ({
        namespace: "AWS/SQS",
        metricName,
        dimensions: { QueueName: queue },
        stat,
    });
    const fanoutMetric = (name: MetricName<"fanout">, stat: string): MetricRef => ({ ...emf(stage, "fanout", name), stat });
    const authorizerMetric = (name: MetricName<"authorizer">, stat: string): MetricRef => ({ ...emf(stage, "authorizer", name), stat });
    const roundsMetric = (name: MetricName<"rounds">, stat: string): MetricRef => ({ ...emf(stage, "rounds", name), stat });
    const fiveMinutes = { period: 300, evaluationPeriods: 1, datapointsToAlarm: 1 };

    const specs: AlarmSpec[] = [
        {
            name: "processor-iterator-age",
            description: "The processor is falling behind the metrics stream (or, on a stream that is always written, has stopped): dashboards show stale values.",
            metric: lambda(functionName(settings, "processor"), "IteratorAge", "Maximum"),
            period: 60,
            evaluationPeriods: 5,
            datapointsToAlarm: 5,
            threshold: t.iteratorAgeMaxMs,
            comparisonOperator: "GreaterThanThreshold",
            // Lambda publishes IteratorAge only while the mapping invokes the processor. On a stream
            // that is written every minute (the writers, the canary: streamAlwaysActive), five
            // minutes without a value mean the mapping is off, broken or throttled: breaching.
            // A stack whose table may be idle (a demo) cannot tell a stop from quiet, and a stack
            // whose broadcasts are switched off on purpose expects none: notBreaching.
            treatMissingData: settings.stream.alwaysActive && settings.switches.broadcasts ? "breaching" : "notBreaching",
        },
        {
            name: "stream-dlq-depth",
            description: "Stream batches failed after all retries, or expired: their METRICS_UPDATEs were not broadcast.",
            metric: sqs(queues.streamDlq, "ApproximateNumberOfMessagesVisible", "Maximum"),
            period: 60,
            evaluationPeriods: 1,
            datapointsToAlarm: 1,
            threshold: 0,
            comparisonOperator: "GreaterThanThreshold",
            // SQS stops publishing a queue's metrics after six hours without any call to it, even
            // while messages sit in it. notBreaching would then turn a DLQ nobody handled back to
            // OK; ignore keeps the last state: ALARM while unhandled, OK while empty.
            treatMissingData: "ignore",
        },
        {
            name: "stream-dlq-growth",
            description: "More stream batches failed (the stream DLQ received new messages) since the last 5 minutes.",
            // Lambda's on-failure destination calls SendMessage, which NumberOfMessagesSent counts,
            // so every new failure shows here even while stream-dlq-depth is already in ALARM.
            metric: sqs(queues.streamDlq, "NumberOfMessagesSent", "Sum"),
            ...fiveMinutes,
            threshold: 0,
            comparisonOperator: "GreaterThanThreshold",
            // A send makes the queue active, so a new failure always has data: no data, no growth.
            treatMissingData: "notBreaching",
        },
        {
            name: "fanout-dlq-depth",
            description: "FanoutJobs failed maxReceiveCount times: some connections missed broadcasts.",
            metric: sqs(queues.fanoutDlq, "ApproximateNumberOfMessagesVisible", "Maximum"),
            period: 60,
            evaluationPeriods: 1,
            datapointsToAlarm: 1,
            threshold: 0,
            comparisonOperator: "GreaterThanThreshold",
            // As stream-dlq-depth: absence is not emptiness (an untouched queue stops reporting).
            treatMissingData: "ignore",
        },
        {
            name: "fanout-dlq-growth",
            description: "More FanoutJobs reached the fan-out DLQ in the last 5 minutes.",
            // SQS's own redrive does not count in NumberOfMessagesSent, so growth is read from the
            // DLQ's size: visible plus in flight (an engineer's receive-message moves messages from
            // one to the other and must not look like growth), up from the previous 5 minutes.
            math: {
                metrics: {
                    visible: sqs(queues.fanoutDlq, "ApproximateNumberOfMessagesVisible", "Maximum"),
                    inflight: sqs(queues.fanoutDlq, "ApproximateNumberOfMessagesNotVisible", "Maximum"),
                },
                steps: { total: "visible + inflight" },
                expression: "DIFF(total)",
                label: "messages added to the fan-out DLQ",
            },
            ...fiveMinutes,
            threshold: 0,
            comparisonOperator: "GreaterThanThreshold",
            // No data: no size to compare, so no growth seen (fanout-dlq-depth keeps its state).
            treatMissingData: "notBreaching",
        },
        {
            name: "fanout-queue-age",
            description: "A FanoutJob has waited in the fan-out queue for too long: deliveries are stopped or far behind.",
            metric: sqs(queues.fanout, "ApproximateAgeOfOldestMessage", "Maximum"),
            period: 60,
            evaluationPeriods: 5,
            datapointsToAlarm: 5,
            threshold: t.fanoutQueueAgeMaxSeconds,
            comparisonOperator: "GreaterThanThreshold",
            // While the fanout mapping polls, the queue reports every minute (0 when empty). With
            // the mapping off and jobs waiting, reports stop after six hours without calls: that
            // must not read as "no backlog", so ignore keeps ALARM until a value says otherwise.
            treatMissingData: "ignore",
        },
    ];

    for (const fn of deployedFunctions(settings)) {
        if (fn === "authorizer") {
            specs.push({
                name: "authorizer-errors",
                description: `The ${functionName(settings, fn)} function failed (crash, timeout, configuration or secret refused at start, signing keys unavailable): those connections were refused with 500.`,
                // The authorizer answers a request without a token with the error `Unauthorized`
                // (API Gateway's 401), which Lambda counts in Errors as well: one per client that
                // connects without a token, not a failure. So: Errors less Unauthorized (both per
                // invocation), or KeysUnavailable (the JWKS could not be had, a 500) if higher.
                math: {
                    metrics: {
                        errors: lambda(functionName(settings, fn), "Errors", "Sum"),
                        unauthorized: authorizerMetric("Unauthorized", "Sum"),
                        keys: authorizerMetric("KeysUnavailable", "Sum"),
                    },
                    steps: { e: "FILL(errors, 0)", u: "FILL(unauthorized, 0)", k: "FILL(keys, 0)", failed: "e - u" },
                    expression: "MAX([failed, k])",
                    label: "authorizer failures (errors other than 401, or keys unavailable)",
                },
                ...fiveMinutes,
                threshold: t.functionErrors,
                comparisonOperator: "GreaterThanThreshold",
                // No invocation, no failure; a start-up failure fails every invocation, so it
                // always has data.
                treatMissingData: "notBreaching",
            });
        } else {
            specs.push({
                name: `${fn}-errors`,
                description: `The ${functionName(settings, fn)} function failed invocations (errors, timeouts, crashes).`,
                metric: lambda(functionName(settings, fn), "Errors", "Sum"),
                ...fiveMinutes,
                threshold: t.functionErrors,
                comparisonOperator: "GreaterThanThreshold",
                // Published per invocation: no invocation, no error (a stopped pipeline is
                // processor-iterator-age's and fanout-queue-age's to see).
                treatMissingData: "notBreaching",
            });
        }
        specs.push({
            name: `${fn}-throttles`,
            description: `Lambda throttled invocations of ${functionName(settings, fn)} (concurrency limit reached).`,
            metric: lambda(functionName(settings, fn), "Throttles", "Sum"),
            ...fiveMinutes,
            threshold: t.functionThrottles,
            comparisonOperator: "GreaterThanThreshold",
            // Published when an invocation is attempted: none attempted, none throttled.
            treatMissingData: "notBreaching",
        });
    }

    // Fewer failures than this never alarm, whatever the ratio (one slow client on a small stack).
    const failedFloor = Math.max(1, t.failedDeliveriesMinimum);
    specs.push(
        {
            name: "fanout-failed-deliveries",
            description: `More than ${t.failedDeliveriesPercent}% of deliveries (Failed / (Delivered + Failed), at least ${failedFloor} Failed) were given up in 5 minutes.`,
            math: {
                metrics: { failed: fanoutMetric("Failed", "Sum"), delivered: fanoutMetric("Delivered", "Sum") },
                steps: { f: "FILL(failed, 0)", d: "FILL(delivered, 0)" },
                expression: `IF(f >= ${failedFloor}, 100 * f / (d + f), 0)`,
                label: "failed deliveries, % of attempted",
            },
            ...fiveMinutes,
            threshold: t.failedDeliveriesPercent,
            comparisonOperator: "GreaterThanThreshold",
            // The fanout emits its counts per invocation: no invocation, no delivery to fail.
            treatMissingData: "notBreaching",
        },
        {
            name: "fanout-requeued-deliveries",
            description: "Deliveries re-enqueued after 429/5xx for 15 minutes: fan-out runs above the account throttle.",
            metric: fanoutMetric("Requeued", "Sum"),
            period: 300,
            evaluationPeriods: 3,
            datapointsToAlarm: 3,
            threshold: t.requeuedDeliveries,
            comparisonOperator: "GreaterThanThreshold",
            // As fanout-failed-deliveries: no invocation, nothing requeued.
            treatMissingData: "notBreaching",
        },
        {
            name: "fanout-delivery-latency",
            description: "p99 time from a FanoutJob's first enqueue to its last delivery (DeliveryLatency) is high for 15 minutes.",
            metric: fanoutMetric("DeliveryLatency", "p99"),
            period: 300,
            evaluationPeriods: 3,
            datapointsToAlarm: 3,
            threshold: t.deliveryLatencyP99Ms,
            comparisonOperator: "GreaterThanThreshold",
            // A latency exists only for delivered jobs; jobs that wait undelivered are
            // fanout-queue-age's to see.
            treatMissingData: "notBreaching",
        },
        {
            name: "fanout-forbidden",
            description: "PostToConnection answered 403 Forbidden: the fanout role or WEBSOCKET_API_ENDPOINT is wrong.",
            metric: fanoutMetric("Forbidden", "Sum"),
            ...fiveMinutes,
            threshold: 0,
            comparisonOperator: "GreaterThanThreshold",
            // Counted per invocation: no invocation, no post refused.
            treatMissingData: "notBreaching",
        },
        {
            name: "fanout-payload-too-large",
            description: "PostToConnection answered 413: a part over API Gateway's 128 KB reached the fanout (a processor bug); those connections missed it.",
            metric: fanoutMetric("PayloadTooLarge", "Sum"),
            ...fiveMinutes,
            threshold: 0,
            comparisonOperator: "GreaterThanThreshold",
            // Counted per invocation: no invocation, no post refused.
            treatMissingData: "notBreaching",
        },
    );

    // Conflated rounds (rounds.ts). The schedule sends RoundAge every minute while rounds run
    // (broadcastMode rounds, broadcasts on); otherwise nothing sends it, on purpose.
    specs.push(
        {
            name: "round-stuck",
            description: `The broadcast round in flight has run for more than ${t.roundStuckSeconds} s (RoundAge, 2 minutes), or the schedule that reports it is silent: no new round starts, so dashboards get no updates.`,
            metric: roundsMetric("RoundAge", "Maximum"),
            period: 60,
            evaluationPeriods: 2,
            datapointsToAlarm: 2,
            threshold: t.roundStuckSeconds * 1000,
            comparisonOperator: "GreaterThanThreshold",
            // The schedule emits RoundAge every minute, 0 when no round is in flight: silence
            // means the schedule, its permission or the processor is broken, and with it the
            // safety net that replaces a stuck round: breaching. In batch mode, or with broadcasts
            // switched off, the schedule is disabled: nothing to miss.
            treatMissingData: roundsActive(settings) ? "breaching" : "notBreaching",
        },
        {
            name: "staleness-high",
            description: `Changes took more than ${t.stalenessSeconds} s to reach every dashboard (Staleness, Maximum per minute, 3 minutes in a row): rounds are slower than the design allows for this fleet and budget.`,
            // Maximum, not p99: a round's Staleness is already the worst case of the changes it
            // carried (its oldest change to the round's end). At scale a minute holds a few
            // rounds (each takes dashboards / budget seconds), so a minute's p99 is its maximum
            // anyway; where rounds are many (a small fleet), a slow tail three minutes in a row is
            // still dashboards that far behind. A single slow round does not page: 3 of 3.
            metric: roundsMetric("Staleness", "Maximum"),
            period: 60,
            evaluationPeriods: 3,
            datapointsToAlarm: 3,
            threshold: t.stalenessSeconds * 1000,
            comparisonOperator: "GreaterThanThreshold",
            // Sent when a round ends: a quiet system has no rounds and so no staleness. A stuck
            // pipeline is round-stuck's (and the canary's) to see.
            treatMissingData: "notBreaching",
        },
        {
            name: "rounds-expired",
            description: "A broadcast round was ended by its lease: its completion was lost (a fanout crashed or timed out, a job went to the DLQ), and its dashboards may have missed it.",
            metric: roundsMetric("RoundsExpired", "Sum"),
            ...fiveMinutes,
            threshold: t.roundsExpired,
            comparisonOperator: "GreaterThanThreshold",
            // Counted by every processor invocation (0 when none expired); no invocation, no expiry.
            treatMissingData: "notBreaching",
        },
    );

    if (settings.auth.mode === "jwt") {
        specs.push({
            name: "authorizer-denials-surge",
            description: `More than ${t.authDenied} tokens were refused (403) in 5 minutes: a rotated secret without new tokens, clients with broken or expired tokens, or an attack.`,
            metric: authorizerMetric("Denied", "Sum"),
            ...fiveMinutes,
            threshold: t.authDenied,
            comparisonOperator: "GreaterThanThreshold",
            // One EMF document per decision: no connection attempt, no denial.
            treatMissingData: "notBreaching",
        });
    }

    const api = (metricName: string): MetricRef => ({
        namespace: "AWS/ApiGateway",
        metricName,
        dimensions: { ApiId: targets.apiId, Stage: targets.stageName },
        stat: "Sum",
    });
    specs.push(
        {
            name: "api-integration-errors",
            description: "Route integrations (connect, disconnect, message) returned errors to API Gateway.",
            metric: api("IntegrationError"),
            ...fiveMinutes,
            threshold: t.apiIntegrationErrors,
            comparisonOperator: "GreaterThanThreshold",
            // API Gateway publishes these per request: no request, no error.
            treatMissingData: "notBreaching",
        },
        {
            name: "api-execution-errors",
            description: "API Gateway failed to call an integration (permissions, missing function, timeouts).",
            metric: api("ExecutionError"),
            ...fiveMinutes,
            threshold: t.apiExecutionErrors,
            comparisonOperator: "GreaterThanThreshold",
            // Per request, as api-integration-errors.
            treatMissingData: "notBreaching",
        },
        {
            name: "api-client-errors",
            description: `API Gateway rejected client requests (4XX before the integration: throttling, oversize frames${settings.auth.mode === "jwt" ? ", and connections the authorizer refused with 401/403" : ""}).`,
            metric: api("ClientError"),
            ...fiveMinutes,
            threshold: t.apiClientErrors,
            comparisonOperator: "GreaterThanThreshold",
            // Per request, as api-integration-errors.
            treatMissingData: "notBreaching",
        },
    );
    return specs;
}

export function alarmTopic(settings: Settings): aws.sns.Topic {
    const topic = new aws.sns.Topic("alarms", { name: `${settings.prefix}-alarms` });
    if (settings.alarms.email !== undefined) {
        new aws.sns.TopicSubscription("alarms-email", {
            topic: topic.arn,
            protocol: "email",
            endpoint: settings.alarms.email,
        });
    }
    return topic;
}

/** `Sum` / `Maximum` / `Average` go to `statistic`, percentiles to `extendedStatistic`. */
function statistic(stat: string): { statistic?: string; extendedStatistic?: string } {
    return /^p\d/.test(stat) ? { extendedStatistic: stat } : { statistic: stat };
}

/** The alarm's metric, or its metric-math queries (only the alarmed expression returns data). */
function alarmedData(spec: AlarmSpec): Partial<aws.cloudwatch.MetricAlarmArgs> {
    if (spec.metric !== undefined) {
        const m = spec.metric;
        return { namespace: m.namespace, metricName: m.metricName, dimensions: m.dimensions, ...statistic(m.stat) };
    }
    const { metrics, steps = {}, expression, label } = spec.math;
    return {
        metricQueries: [
            ...Object.entries(metrics).map(([id, m]) => ({
                id,
                returnData: false,
                metric: { namespace: m.namespace, metricName: m.metricName, dimensions: m.dimensions, stat: m.stat, period: spec.period },
            })),
            ...Object.entries(steps).map(([id, step]) => ({ id, expression: step, returnData: false })),
            { id: "alarmed", expression, label, returnData: true },
        ],
    };
}

export function alarms(settings: Settings, specs: AlarmSpec[], topic: aws.sns.Topic): aws.cloudwatch.MetricAlarm[] {
    const names = new Set<string>();
    return specs.map((spec) => {
        if (names.has(spec.name)) throw new Error(`two alarms are named ${spec.name}`);
        names.add(spec.name);
        const math = spec.math !== undefined;
        return new aws.cloudwatch.MetricAlarm(spec.name, {
            name: `${settings.prefix}-${spec.name}`,
            alarmDescription: `${spec.description} Runbook: RUNBOOK.md, section "${spec.name}".`,
            ...alarmedData(spec),
            // A metric-math alarm carries its period in each query.
            period: math ? undefined : spec.period,
            evaluationPeriods: spec.evaluationPeriods,
            datapointsToAlarm: spec.datapointsToAlarm,
            threshold: spec.threshold,
            comparisonOperator: spec.comparisonOperator,
            treatMissingData: spec.treatMissingData,
            alarmActions: [topic.arn],
            okActions: [topic.arn],
        });
    });
}
