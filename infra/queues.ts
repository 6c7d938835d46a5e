// The fan-out queue with its DLQ, the DLQ that is the stream mapping's on-failure destination,
// and the tick queue with its DLQ: the messages that wake the processor to start the next round.

import * as aws from "@pulumi/aws";

import { queueNames, Settings } from "./config";

export interface Queues {
    fanout: aws.sqs.Queue;
    fanoutDlq: aws.sqs.Queue;
    streamDlq: aws.sqs.Queue;
    ticks: aws.sqs.Queue;
    ticksDlq: aws.sqs.Queue;
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

    // Ticks (rounds/src/tick.rs): a round that ended, and a round's lease end (sent with a
    // delay of up to 15 minutes). Every tick means "see whether a round should start", so one
    // the processor failed on 5 times is only a trace of those failures (processor-errors pages
    // for them); the schedule does its work every minute regardless.
    const t = settings.broadcast.tickQueue;
    const ticksDlq = new aws.sqs.Queue("ticks-dlq", {
        name: names.ticksDlq,
        messageRetentionSeconds: q.dlqRetentionSeconds,
        sqsManagedSseEnabled: true,
    });
    const ticks = new aws.sqs.Queue("ticks", {
        name: names.ticks,
        // Above the processor's timeout: a batch of ticks is not handed to a second invocation
        // while the first still runs a round.
        visibilityTimeoutSeconds: t.visibilityTimeoutSeconds,
        messageRetentionSeconds: t.retentionSeconds,
        sqsManagedSseEnabled: true,
        redrivePolicy: ticksDlq.arn.apply((deadLetterTargetArn) =>
            JSON.stringify({ deadLetterTargetArn, maxReceiveCount: t.maxReceiveCount }),
        ),
    });
    new aws.sqs.RedriveAllowPolicy("ticks-dlq", {
        queueUrl: ticksDlq.url,
        redriveAllowPolicy: ticks.arn.apply((arn) => JSON.stringify({ redrivePermission: "byQueue", sourceQueueArns: [arn] })),
    });

    return { fanout, fanoutDlq, streamDlq, ticks, ticksDlq };
}
