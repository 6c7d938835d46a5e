// The connections table (the seed's schema, DESIGN.md) and the metrics table's stream.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { Settings } from "./config";

export function connectionsTable(settings: Settings): aws.dynamodb.Table {
    const { tableName, indexName } = settings.connections;
    return new aws.dynamodb.Table("connections", {
        name: tableName,
        billingMode: "PAY_PER_REQUEST",
        hashKey: "connectionId",
        attributes: [
            { name: "connectionId", type: "S" },
            // "true" with one bucket (the seed), "true#0".."true#{N-1}" with CONNECTION_BUCKETS=N.
            { name: "connected", type: "S" },
            // Epoch milliseconds.
            { name: "connectedAt", type: "N" },
        ],
        globalSecondaryIndexes: [
            {
                name: indexName,
                keySchemas: [
                    { attributeName: "connected", keyType: "HASH" },
                    { attributeName: "connectedAt", keyType: "RANGE" },
                ],
                // Fan-out reads only connectionId, which every projection carries. When the
                // subscription filter becomes an attribute, project it with INCLUDE
                // (nonKeyAttributes: ["<filter attribute>"]) so fan-out never needs a GetItem.
                projectionType: "KEYS_ONLY",
            },
        ],
        // Rows that $disconnect missed expire (epoch seconds, CONNECTION_TTL_SECONDS ahead).
        ttl: { attributeName: "ttl", enabled: true },
        pointInTimeRecovery: { enabled: true },
    });
}

export interface MetricsSource {
    /** The table, when this stack owns it. */
    table?: aws.dynamodb.Table;
    tableName?: pulumi.Output<string>;
    streamArn: pulumi.Input<string>;
}

/**
 * The metrics table with a NEW_AND_OLD_IMAGES stream, or the stream of a table owned elsewhere
 * (config `metricsStreamArn`; that table's stream must be NEW_AND_OLD_IMAGES too).
 */
export function metricsSource(settings: Settings): MetricsSource {
    if (settings.metrics.kind === "existing") {
        return { streamArn: settings.metrics.streamArn };
    }
    const table = new aws.dynamodb.Table("metrics", {
        name: settings.metrics.tableName,
        billingMode: "PAY_PER_REQUEST",
        hashKey: "entity_id",
        attributes: [{ name: "entity_id", type: "S" }],
        streamEnabled: true,
        streamViewType: "NEW_AND_OLD_IMAGES",
        pointInTimeRecovery: { enabled: true },
    });
    return { table, tableName: table.name, streamArn: table.streamArn };
}
