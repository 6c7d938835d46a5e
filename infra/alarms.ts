// Every alarm, to one SNS topic. Each alarm's logical name (`spec.name`) is the heading of its
// section in RUNBOOK.md and the suffix of its CloudWatch name `<prefix>-<name>`; a test checks
// both directions. Alarms on the functions' own metrics take their names from metrics.json.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { emf } from "./catalogue";
import { FUNCTION_NAMES, functionName, queueNames, Settings } from "./config";

export interface AlarmSpec {
    /** Stable logical name: the RUNBOOK.md heading. */
    name: string;
    description: string;
    namespace: string;
    metricName: string;
    dimensions: Record<string, pulumi.Input<string>>;
    statistic?: "Sum" | "Maximum" | "Average";
    /** A percentile such as `p99`, instead of `statistic`. */
    extendedStatistic?: string;
    period: number;
    evaluationPeriods: number;
    datapointsToAlarm: number;
    threshold: number;
    comparisonOperator: "GreaterThanThreshold";
}

export interface AlarmTargets {
    apiId: pulumi.Input<string>;
    stageName: string;
}

export function alarmSpecs(settings: Settings, targets: AlarmTargets): AlarmSpec[] {
    const t = settings.alarms;
    const queues = queueNames(settings);
    const lambda = (fn: string) => ({ FunctionName: fn });
    const fiveMinutes = { period: 300, evaluationPeriods: 1, datapointsToAlarm: 1 };

    const specs: AlarmSpec[] = [
        {
            name: "processor-iterator-age",
            description: "The processor is falling behind the metrics stream: dashboards show stale values.",
            namespace: "AWS/Lambda",
            metricName: "IteratorAge",
            dimensions: lambda(functionName(settings, "processor")),
            statistic: "Maximum",
            period: 60,
            evaluationPeriods: 5,
            datapointsToAlarm: 5,
            threshold: t.iteratorAgeMaxMs,
            comparisonOperator: "GreaterThanThreshold",
        },
        {
            name: "stream-dlq-depth",
            description: "Stream batches failed after all retries: their METRICS_UPDATEs were not broadcast.",
            namespace: "AWS/SQS",
            metricName: "ApproximateNumberOfMessagesVisible",
            dimensions: { QueueName: queues.streamDlq },
            statistic: "Maximum",
            period: 60,
            evaluationPeriods: 1,
            datapointsToAlarm: 1,
            threshold: 0,
            comparisonOperator: "GreaterThanThreshold",
        },
        {
            name: "fanout-dlq-depth",
            description: "FanoutJobs failed maxReceiveCount times: some connections missed broadcasts.",
            namespace: "AWS/SQS",
            metricName: "ApproximateNumberOfMessagesVisible",
            dimensions: { QueueName: queues.fanoutDlq },
            statistic: "Maximum",
            period: 60,
            evaluationPeriods: 1,
            datapointsToAlarm: 1,
            threshold: 0,
            comparisonOperator: "GreaterThanThreshold",
        },
    ];

    for (const fn of FUNCTION_NAMES) {
        specs.push({
            name: `${fn}-errors`,
            description: `The ${functionName(settings, fn)} function failed invocations (errors, timeouts, crashes).`,
            namespace: "AWS/Lambda",
            metricName: "Errors",
            dimensions: lambda(functionName(settings, fn)),
            statistic: "Sum",
            ...fiveMinutes,
            threshold: t.functionErrors,
            comparisonOperator: "GreaterThanThreshold",
        });
        specs.push({
            name: `${fn}-throttles`,
            description: `Lambda throttled invocations of ${functionName(settings, fn)} (concurrency limit reached).`,
            namespace: "AWS/Lambda",
            metricName: "Throttles",
            dimensions: lambda(functionName(settings, fn)),
            statistic: "Sum",
            ...fiveMinutes,
            threshold: t.functionThrottles,
            comparisonOperator: "GreaterThanThreshold",
        });
    }

    specs.push(
        {
            name: "fanout-failed-deliveries",
            description: "Deliveries given up after FANOUT_MAX_ATTEMPTS: those connections missed a broadcast.",
            ...emf("fanout", "Failed"),
            statistic: "Sum",
            ...fiveMinutes,
            threshold: t.failedDeliveries,
            comparisonOperator: "GreaterThanThreshold",
        },
        {
            name: "fanout-requeued-deliveries",
            description: "Deliveries re-enqueued after 429/5xx for 15 minutes: fan-out runs above the account throttle.",
            ...emf("fanout", "Requeued"),
            statistic: "Sum",
            period: 300,
            evaluationPeriods: 3,
            datapointsToAlarm: 3,
            threshold: t.requeuedDeliveries,
            comparisonOperator: "GreaterThanThreshold",
        },
        {
            name: "fanout-delivery-latency",
            description: "p99 time from a FanoutJob's first enqueue to its last delivery (DeliveryLatency) is high for 15 minutes.",
            ...emf("fanout", "DeliveryLatency"),
            extendedStatistic: "p99",
            period: 300,
            evaluationPeriods: 3,
            datapointsToAlarm: 3,
            threshold: t.deliveryLatencyP99Ms,
            comparisonOperator: "GreaterThanThreshold",
        },
        {
            name: "fanout-forbidden",
            description: "PostToConnection answered 403 Forbidden: the fanout role or WEBSOCKET_API_ENDPOINT is wrong.",
            ...emf("fanout", "Forbidden"),
            statistic: "Sum",
            ...fiveMinutes,
            threshold: 0,
            comparisonOperator: "GreaterThanThreshold",
        },
    );

    const api = { ApiId: targets.apiId, Stage: targets.stageName };
    specs.push(
        {
            name: "api-integration-errors",
            description: "Route integrations (connect, disconnect, message) returned errors to API Gateway.",
            namespace: "AWS/ApiGateway",
            metricName: "IntegrationError",
            dimensions: api,
            statistic: "Sum",
            ...fiveMinutes,
            threshold: t.apiIntegrationErrors,
            comparisonOperator: "GreaterThanThreshold",
        },
        {
            name: "api-execution-errors",
            description: "API Gateway failed to call an integration (permissions, missing function, timeouts).",
            namespace: "AWS/ApiGateway",
            metricName: "ExecutionError",
            dimensions: api,
            statistic: "Sum",
            ...fiveMinutes,
            threshold: t.apiExecutionErrors,
            comparisonOperator: "GreaterThanThreshold",
        },
        {
            name: "api-client-errors",
            description: "API Gateway rejected client requests (4XX before the integration, including throttling).",
            namespace: "AWS/ApiGateway",
            metricName: "ClientError",
            dimensions: api,
            statistic: "Sum",
            ...fiveMinutes,
            threshold: t.apiClientErrors,
            comparisonOperator: "GreaterThanThreshold",
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

export function alarms(settings: Settings, specs: AlarmSpec[], topic: aws.sns.Topic): aws.cloudwatch.MetricAlarm[] {
    const names = new Set<string>();
    return specs.map((spec) => {
        if (names.has(spec.name)) throw new Error(`two alarms are named ${spec.name}`);
        names.add(spec.name);
        return new aws.cloudwatch.MetricAlarm(spec.name, {
            name: `${settings.prefix}-${spec.name}`,
            alarmDescription: `${spec.description} Runbook: RUNBOOK.md, section "${spec.name}".`,
            namespace: spec.namespace,
            metricName: spec.metricName,
            dimensions: spec.dimensions,
            statistic: spec.statistic,
            extendedStatistic: spec.extendedStatistic,
            period: spec.period,
            evaluationPeriods: spec.evaluationPeriods,
            datapointsToAlarm: spec.datapointsToAlarm,
            threshold: spec.threshold,
            comparisonOperator: spec.comparisonOperator,
            // No data (an idle stage, an empty queue, no broadcasts) is healthy.
            treatMissingData: "notBreaching",
            alarmActions: [topic.arn],
            okActions: [topic.arn],
        });
    });
}
