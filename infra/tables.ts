// The connections table (the seed's schema, DESIGN.md) and the metrics table's stream.
//
// Tables hold state no deploy can recreate (every open connection; the metrics), so each is
// protected three ways: DynamoDB's deletion protection (nobody deletes it, console included),
// Pulumi's `protect` (a preview that would delete or replace it fails instead) and
// `retainOnDelete` (a `pulumi destroy` or a removal from the program only forgets it). To adopt
// the seed's existing table instead of creating one: RUNBOOK "Adopt the seed's connections table".

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { Settings } from "./config";

/** The resource options of every table. */
export const TABLE_OPTIONS: pulumi.CustomResourceOptions = { protect: true, retainOnDelete: true };

export function connectionsTable(settings: Settings): aws.dynamodb.Table {
    const { tableName, indexName, indexProjection } = settings.connections;
    return new aws.dynamodb.Table(
        "connections",
        {
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
                    // ALL only to adopt a table whose index already has it (a projection cannot
                    // change in place: the index would be dropped and rebuilt).
                    projectionType: indexProjection,
                },
            ],
            // Rows that $disconnect missed expire (epoch seconds, CONNECTION_TTL_SECONDS ahead).
            ttl: { attributeName: "ttl", enabled: true },
            pointInTimeRecovery: { enabled: true },
            deletionProtectionEnabled: true,
        },
        TABLE_OPTIONS,
    );
}

export interface MetricsSource {
    /** The table, when this stack owns it. */
    table?: aws.dynamodb.Table;
    tableName?: pulumi.Output<string>;
    streamArn: pulumi.Input<string>;
}

/**
 * The stream of the metrics table owned elsewhere (config `metricsStreamArn`, production; that
 * table's stream must be NEW_AND_OLD_IMAGES), or, only when config `createMetricsTable` asks
 * (demo stacks), a new, empty table with such a stream.
 */
export function metricsSource(settings: Settings): MetricsSource {
    if (settings.metrics.kind === "existing") {
        return { streamArn: settings.metrics.streamArn };
    }
    const table = new aws.dynamodb.Table(
        "metrics",
        {
            name: settings.metrics.tableName,
            billingMode: "PAY_PER_REQUEST",
            hashKey: "entity_id",
            attributes: [{ name: "entity_id", type: "S" }],
            streamEnabled: true,
            streamViewType: "NEW_AND_OLD_IMAGES",
            pointInTimeRecovery: { enabled: true },
            deletionProtectionEnabled: true,
        },
        TABLE_OPTIONS,
    );
    return { table, tableName: table.name, streamArn: table.streamArn };
}
