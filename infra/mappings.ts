// The event source mappings: the metrics stream -> processor, and the fan-out queue -> fanout.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { Settings, STREAM_MAPPING } from "./config";
import { RustFunction } from "./functions";

export function streamMapping(
    settings: Settings,
    processor: RustFunction,
    streamArn: pulumi.Input<string>,
    onFailureArn: pulumi.Input<string>,
): aws.lambda.EventSourceMapping {
    return new aws.lambda.EventSourceMapping(
        "processor-stream",
        {
            functionName: processor.function.arn,
            eventSourceArn: streamArn,
            // Off: no new broadcasts; the stream keeps records 24 h and the mapping resumes from
            // its checkpoint when switched on again.
            enabled: settings.switches.broadcasts,
            startingPosition: STREAM_MAPPING.startingPosition,
            batchSize: STREAM_MAPPING.batchSize,
            maximumBatchingWindowInSeconds: STREAM_MAPPING.maximumBatchingWindowInSeconds,
            parallelizationFactor: STREAM_MAPPING.parallelizationFactor,
            // A failing batch is split in halves until the bad record is alone ...
            bisectBatchOnFunctionError: STREAM_MAPPING.bisectBatchOnFunctionError,
            maximumRetryAttempts: STREAM_MAPPING.maximumRetryAttempts,
            // ... and after the retries its shard position goes to the stream DLQ.
            destinationConfig: { onFailure: { destinationArn: onFailureArn } },
            // The processor reports the first failed record; the batch resumes from there.
            functionResponseTypes: ["ReportBatchItemFailures"],
        },
        // The mapping is validated against the role's permissions when it is created.
        { dependsOn: [processor.policy] },
    );
}

export function queueMapping(settings: Settings, fanout: RustFunction, queueArn: pulumi.Input<string>): aws.lambda.EventSourceMapping {
    return new aws.lambda.EventSourceMapping(
        "fanout-queue",
        {
            functionName: fanout.function.arn,
            eventSourceArn: queueArn,
            // Off: FanoutJobs wait in the queue (retention 4 days) and nothing is posted.
            enabled: settings.switches.deliveries,
            batchSize: settings.fanout.batchSize,
            maximumBatchingWindowInSeconds: 0,
            // Only the FanoutJobs that failed return to the queue (and, past maxReceiveCount, the DLQ).
            functionResponseTypes: ["ReportBatchItemFailures"],
            // Caps concurrent fanout invocations: with FANOUT_CONCURRENCY posts each, this bounds
            // the PostToConnection rate against the account throttle.
            scalingConfig: { maximumConcurrency: settings.fanout.maxConcurrency },
        },
        { dependsOn: [fanout.policy] },
    );
}
