// The fan-out queue with its DLQ, and the DLQ that is the stream mapping's on-failure destination.

import * as aws from "@pulumi/aws";

import { queueNames, Settings } from "./config";

export interface Queues {
    fanout: aws.sqs.Queue;
    fanoutDlq: aws.sqs.Queue;
    streamDlq: aws.sqs.Queue;
}

export function queues(settings: Settings): Queues {
    const names = queueNames(settings);
    const q = settings.queue;

    const fanoutDlq = new aws.sqs.Queue("fanout-dlq", {
        name: names.fanoutDlq,
        messageRetentionSeconds: q.dlqRetentionSeconds,
        // A DLQ's messages are as large as the source queue's.
        maxMessageSize: q.maxMessageBytes,
        sqsManagedSseEnabled: true,
    });

    const fanout = new aws.sqs.Queue("fanout", {
        name: names.fanout,
        // Set explicitly: the provider's default is 256 KiB, and the processor sizes FanoutJob
        // messages and batches by QUEUE_MAX_MESSAGE_BYTES, which is this same value.
        maxMessageSize: q.maxMessageBytes,
        // Above the fanout function's timeout (6x, AWS's advice for SQS event sources).
        visibilityTimeoutSeconds: q.visibilityTimeoutSeconds,
        messageRetentionSeconds: q.retentionSeconds,
        sqsManagedSseEnabled: true,
        redrivePolicy: fanoutDlq.arn.apply((deadLetterTargetArn) =>
            JSON.stringify({ deadLetterTargetArn, maxReceiveCount: q.maxReceiveCount }),
        ),
    });

    // Only the fan-out queue may use its DLQ (the move task back is allowed regardless).
    new aws.sqs.RedriveAllowPolicy("fanout-dlq", {
        queueUrl: fanoutDlq.url,
        redriveAllowPolicy: fanout.arn.apply((arn) =>
            JSON.stringify({ redrivePermission: "byQueue", sourceQueueArns: [arn] }),
        ),
    });

    // Lambda writes the metadata of a failed stream batch here (not the records: those are read
    // back from the stream with the shard iterator in the message, within the 24 h retention).
    const streamDlq = new aws.sqs.Queue("stream-dlq", {
        name: names.streamDlq,
        messageRetentionSeconds: q.dlqRetentionSeconds,
        sqsManagedSseEnabled: true,
    });

    return { fanout, fanoutDlq, streamDlq };
}
