// One CloudWatch dashboard: a graph per alarm (its metric and statistic, or its metric-math
// expression over hidden input metrics, at the alarm's period, with the threshold drawn), then
// the posting budget and the rounds (posts per second against the budget, staleness, round
// duration and age, pending entities), then the throughput figures that explain them (snapshots
// among them). Every
// custom metric carries its catalogue dimensions (Service and this stack's Stage), as the
// functions emit them.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { AlarmSpec } from "./alarms";
import { emf, MetricName, Service } from "./catalogue";
import { API_GATEWAY_ACCOUNT_RATE, Settings } from "./config";

type MetricRow = pulumi.Input<string | Record<string, unknown>>[];

interface Widget {
    type: "metric" | "text";
    x: number;
    y: number;
    width: number;
    height: number;
    properties: Record<string, unknown>;
}

function metricRow(
    namespace: string,
    metricName: string,
    dimensions: Record<string, pulumi.Input<string>>,
    options: Record<string, unknown> = {},
): MetricRow {
    const row: MetricRow = [namespace, metricName];
    for (const [key, value] of Object.entries(dimensions)) row.push(key, value);
    row.push(options);
    return row;
}

/** The rows that draw an alarm's data: its metric, or its hidden inputs and the expression. */
function alarmRows(spec: AlarmSpec): MetricRow[] {
    if (spec.metric !== undefined) {
        const m = spec.metric;
        return [metricRow(m.namespace, m.metricName, m.dimensions, { label: m.metricName })];
    }
    const { metrics, steps = {}, expression, label } = spec.math;
    return [
        ...Object.entries(metrics).map(([id, m]) => metricRow(m.namespace, m.metricName, m.dimensions, { id, stat: m.stat, visible: false })),
        ...Object.entries(steps).map(([id, step]): MetricRow => [{ id, expression: step, visible: false }]),
        [{ id: "alarmed", expression, label }],
    ];
}

export function dashboard(
    settings: Settings,
    specs: AlarmSpec[],
    region: pulumi.Input<string>,
    api: { apiId: pulumi.Input<string>; stageName: string },
): aws.cloudwatch.Dashboard {
    const widgets: Widget[] = [];
    let y = 0;
    widgets.push({
        type: "text",
        x: 0,
        y,
        width: 24,
        height: 2,
        properties: {
            markdown: `# ${settings.prefix} WebSocket fan-out\nOne graph per alarm (red line: threshold; each alarm is a section of RUNBOOK.md), then the posting budget and the rounds, then throughput.`,
        },
    });
    y += 2;

    const stage = settings.api.stageName;
    const emfRow = <S extends Service>(service: S, name: MetricName<S>, stat = "Sum", options: Record<string, unknown> = {}): MetricRow => {
        const m = emf(stage, service, name);
        return metricRow(m.namespace, m.metricName, m.dimensions, { stat, label: `${service} ${name}`, ...options });
    };

    specs.forEach((spec, i) => {
        widgets.push({
            type: "metric",
            x: (i % 3) * 8,
            y: y + Math.floor(i / 3) * 6,
            width: 8,
            height: 6,
            properties: {
                title: spec.name,
                region,
                view: "timeSeries",
                stacked: false,
                period: spec.period,
                // A metric-math graph gives each input its own statistic.
                ...(spec.metric !== undefined ? { stat: spec.metric.stat } : {}),
                metrics: alarmRows(spec),
                annotations: { horizontal: [{ label: "alarm threshold", value: spec.threshold, color: "#d62728" }] },
            },
        });
    });
    y += Math.ceil(specs.length / 3) * 6;

    // Posts per second against the posting budget: the fanout's Posts (one value per invocation)
    // summed per period, over the period's seconds; the budget and the account throttle drawn.
    const budget = settings.broadcast.postBudgetPerSecond;
    const rateLines = [
        ...(budget > 0 ? [{ label: `posting budget (${budget}/s)`, value: budget, color: "#2ca02c" }] : []),
        { label: `account throttle, default (${API_GATEWAY_ACCOUNT_RATE}/s, shared)`, value: API_GATEWAY_ACCOUNT_RATE, color: "#d62728" },
    ];
    const rounds: { title: string; metrics: MetricRow[]; extra?: Record<string, unknown> }[] = [
        {
            title: budget > 0 ? "posts per second against the budget" : "posts per second (unpaced: postBudgetPerSecond 0)",
            metrics: [
                emfRow("fanout", "Posts", "Sum", { id: "posts", visible: false }),
                [{ id: "rate", expression: "posts / PERIOD(posts)", label: "posts/s" }],
                emfRow("fanout", "BudgetWait", "Sum", { label: "ms waited for the budget (sum)", yAxis: "right" }),
                emfRow("fanout", "Throttled", "Sum", { label: "429s (sum)", yAxis: "right" }),
            ],
            extra: { annotations: { horizontal: rateLines }, yAxis: { left: { min: 0, label: "posts/s" } } },
        },
        {
            title: `staleness, p50 / p99 / max (ms; alarm over ${settings.alarms.stalenessSeconds} s)`,
            metrics: [
                emfRow("rounds", "Staleness", "p50", { label: "staleness p50" }),
                emfRow("rounds", "Staleness", "p99", { label: "staleness p99" }),
                emfRow("rounds", "Staleness", "Maximum", { label: "staleness max" }),
            ],
            extra: { annotations: { horizontal: [{ label: "staleness-high", value: settings.alarms.stalenessSeconds * 1000, color: "#d62728" }] } },
        },
        {
            title: "round duration p50 / p99 and round age (ms)",
            metrics: [
                emfRow("rounds", "RoundDuration", "p50", { label: "round duration p50" }),
                emfRow("rounds", "RoundDuration", "p99", { label: "round duration p99" }),
                emfRow("rounds", "RoundAge", "Maximum", { label: "age of the round in flight (schedule)" }),
            ],
        },
        {
            title: "rounds: pending entities, entities per round, started, expired",
            metrics: [
                emfRow("rounds", "PendingEntities", "Maximum", { label: "pending entities (schedule)" }),
                emfRow("rounds", "RoundEntities", "Average", { label: "entities per round (avg)" }),
                emfRow("rounds", "RoundsStarted", "Sum", { label: "rounds started", yAxis: "right" }),
                emfRow("rounds", "RoundsExpired", "Sum", { label: "rounds expired (lease)", yAxis: "right" }),
                emfRow("processor", "ChangesPending", "Sum", { label: "changes recorded pending" }),
                emfRow("processor", "ChangesStale", "Sum", { label: "changes older than recorded (replays)" }),
            ],
        },
    ];

    const throughput: { title: string; metrics: MetricRow[]; extra?: Record<string, unknown> }[] = [
        ...rounds,
        {
            title: "fanout deliveries",
            metrics: [
                emfRow("fanout", "Delivered"),
                emfRow("fanout", "Gone"),
                emfRow("fanout", "Throttled"),
                emfRow("fanout", "Retried"),
                emfRow("fanout", "Requeued"),
                emfRow("fanout", "Failed"),
                emfRow("fanout", "Forbidden"),
                emfRow("fanout", "PayloadTooLarge"),
                emfRow("fanout", "MalformedJobs"),
            ],
        },
        {
            title: "processor",
            metrics: [
                emfRow("processor", "Records"),
                emfRow("processor", "RecordsSkipped"),
                emfRow("processor", "RecordsTruncated"),
                emfRow("processor", "Parts"),
                emfRow("processor", "JobsSent"),
                emfRow("processor", "ConnectionsPaged"),
                emfRow("processor", "Pages"),
            ],
        },
        {
            // The message function's snapshots on open: what was sent, and how often the state
            // table's entities were read for them (the rest came from the function's memory).
            title: "snapshots",
            metrics: [
                emfRow("snapshot", "Snapshots"),
                emfRow("snapshot", "SnapshotParts"),
                emfRow("snapshot", "SnapshotFailures"),
                emfRow("snapshot", "SnapshotsGone"),
                emfRow("snapshot", "StateReads"),
                emfRow("snapshot", "StateCacheHits"),
                emfRow("snapshot", "SnapshotItems", "Sum", { yAxis: "right" }),
            ],
        },
        {
            title: "broadcast lag (p99) and delivery latency (p99)",
            metrics: [emfRow("processor", "BroadcastLag", "p99"), emfRow("fanout", "DeliveryLatency", "p99")],
        },
        // With authMode jwt: what the authorizer decided, one count per $connect attempt.
        ...(settings.auth.mode === "jwt"
            ? [
                  {
                      title: "authorizer decisions ($connect)",
                      metrics: [
                          emfRow("authorizer", "Allowed"),
                          emfRow("authorizer", "Denied"),
                          emfRow("authorizer", "Unauthorized"),
                          emfRow("authorizer", "KeysUnavailable"),
                      ],
                  },
              ]
            : []),
        {
            title: "connections and messages",
            metrics: [
                metricRow("AWS/ApiGateway", "ConnectCount", { ApiId: api.apiId, Stage: api.stageName }, { stat: "Sum" }),
                metricRow("AWS/ApiGateway", "MessageCount", { ApiId: api.apiId, Stage: api.stageName }, { stat: "Sum" }),
            ],
        },
    ];
    throughput.forEach((w, i) => {
        widgets.push({
            type: "metric",
            x: (i % 2) * 12,
            y: y + Math.floor(i / 2) * 6,
            width: 12,
            height: 6,
            properties: { title: w.title, region, view: "timeSeries", stacked: false, period: 60, metrics: w.metrics, ...w.extra },
        });
    });

    return new aws.cloudwatch.Dashboard("dashboard", {
        dashboardName: `${settings.prefix}-websocket`,
        dashboardBody: pulumi.jsonStringify({ widgets }),
    });
}
