// The connections table (the seed's schema, DESIGN.md), the metrics table's stream, and the
// broadcast state table of the rounds (rounds/src/store.rs).
//
// Tables hold state no deploy can recreate (every open connection; the metrics), so each is
// protected three ways: DynamoDB's deletion protection (nobody deletes it, console included),
// Pulumi's `protect` (a preview that would delete or replace it fails instead) and
// `retainOnDelete` (a `pulumi destroy` or a removal from the program only forgets it). To adopt
// the seed's existing table instead of creating one: RUNBOOK "Adopt the seed's connections table".

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { IndexProjection, Settings } from "./config";

/** The resource options of every table. */
export const TABLE_OPTIONS: pulumi.CustomResourceOptions = { protect: true, retainOnDelete: true };

/**
 * What the connections index carries besides keys with the INCLUDE projection: what each
 * connection receives (its filter, its token's entity types), so that the processor pages the
 * index without a read per connection (registry/src/store.rs `live_connections`;
 * dev/stack/src/bootstrap.rs `PROJECTED`).
 */
export const INDEX_ATTRIBUTES = ["entityTypes", "entityIds", "allowedEntityTypes"] as const;

/** The `connected` / `connectedAt` index named `name` with `projection`. */
function connectedIndex(name: string, projection: IndexProjection): aws.types.input.dynamodb.TableGlobalSecondaryIndex {
    return {
        name,
        keySchemas: [
            { attributeName: "connected", keyType: "HASH" },
            { attributeName: "connectedAt", keyType: "RANGE" },
        ],
        projectionType: projection,
        ...(projection === "INCLUDE" ? { nonKeyAttributes: [...INDEX_ATTRIBUTES] } : {}),
    };
}

export function connectionsTable(settings: Settings): aws.dynamodb.Table {
    const { tableName, indexName, indexProjection, previousIndexName } = settings.connections;
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
            // A projection cannot change in place: a new one is a new index, built online beside
            // the old (connectionsIndexPrevious) until the functions use it (RUNBOOK "Move the
            // connections index to INCLUDE"). KEYS_ONLY and ALL only to adopt an index that has them.
            globalSecondaryIndexes: [
                connectedIndex(indexName, indexProjection),
                ...(previousIndexName !== undefined ? [connectedIndex(previousIndexName, "KEYS_ONLY")] : []),
            ],
            // Rows that $disconnect missed expire (epoch seconds, CONNECTION_TTL_SECONDS ahead).
            ttl: { attributeName: "ttl", enabled: true },
            pointInTimeRecovery: { enabled: true },
            deletionProtectionEnabled: true,
        },
        TABLE_OPTIONS,
    );
}

/**
 * The broadcast state table, `<prefix>-broadcast-state` (STATE_TABLE_NAME of the processor, the
 * fanout and the message function): one per stack, as at most one round is in flight per stage.
 * Its items, all under `pk` (S) and `sk` (S):
 *   entity / <keys>             an entity's latest change (the guard against replayed records;
 *                               the snapshots' source, in both broadcast modes)
 *   pending / <keys>            its latest change not yet broadcast (the next round's content)
 *   round / current             the round in flight, or the last one
 *   done#<roundId> / <job key>  a finished job of a round (a job delivered twice counts once)
 *   budget / lanes              how far each lane of the posting budget is taken (fanout)
 * Done markers expire by TTL (`expiresAt`, epoch seconds). Losing the table
 * loses the pending changes and every entity's guard, so it is protected as the others are.
 */
export function broadcastStateTable(settings: Settings): aws.dynamodb.Table {
    return new aws.dynamodb.Table(
        "broadcast-state",
        {
            name: settings.broadcast.stateTableName,
            billingMode: "PAY_PER_REQUEST",
            hashKey: "pk",
            rangeKey: "sk",
            attributes: [
                { name: "pk", type: "S" },
                { name: "sk", type: "S" },
            ],
            ttl: { attributeName: "expiresAt", enabled: true },
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
