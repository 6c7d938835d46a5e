// Conflated broadcast rounds (rounds.ts): their settings and the errors a wrong value gets, and,
// on Pulumi's mocks, a production-like stack in rounds mode with its own budget, lease and
// thresholds: the broadcast state table, the tick queue and its DLQ, the tick mapping and the
// schedule into the processor, what the processor and the fanout may do to them, the variables
// they read, the alarms and the dashboard's graphs.

import * as assert from "node:assert/strict";
import { before, describe, it } from "node:test";

import { alarmSpecs } from "../alarms";
import { ConfigError, loadSettings, roundsActive, Settings } from "../config";
import { ACCOUNT, fakeArtifacts, FUNCTIONS, grants, Program, REGION, runProgram, Statement } from "./harness";

const PREFIX = "iops-ws-green";
const STREAM_ARN = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/iops-metrics/stream/2025-06-01T00:00:00.000`;
const STATE_TABLE = `${PREFIX}-broadcast-state`;
const STATE_TABLE_ARN = `arn:aws:dynamodb:${REGION}:${ACCOUNT}:table/${STATE_TABLE}`;
const TICKS = `${PREFIX}-ticks`;
const TICKS_DLQ = `${PREFIX}-ticks-dlq`;
const sqsArn = (name: string) => `arn:aws:sqs:${REGION}:${ACCOUNT}:${name}`;
const sqsUrl = (name: string) => `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/${name}`;
const PROCESSOR_ARN = `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${PREFIX}-processor`;
const RULE_ARN = `arn:aws:events:${REGION}:${ACCOUNT}:rule/${PREFIX}-processor-tick`;

const FUNCTION = "aws:lambda/function:Function";
const MAPPING = "aws:lambda/eventSourceMapping:EventSourceMapping";
const QUEUE = "aws:sqs/queue:Queue";
const ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm";

const STREAM = { metricsStreamArn: STREAM_ARN };
const load = (values: Record<string, string> = {}): Settings =>
    loadSettings({ get: (key) => ({ ...STREAM, ...values })[key] }, "iops-ws", "prod");
const configError = (message: RegExp) => (e: unknown) => e instanceof ConfigError && message.test(e.message);

describe("rounds settings", () => {
    it("default to rounds, a 9,000/s budget, a 60 s lease, and thresholds for 100,000 dashboards", () => {
        const s = load();
        assert.deepEqual(s.broadcast, {
            mode: "rounds",
            postBudgetPerSecond: 9000,
            roundLeaseSeconds: 60,
            stateTableName: "iops-ws-prod-broadcast-state",
            // 6 x the processor's 300 s timeout.
            tickQueue: { visibilityTimeoutSeconds: 1800, retentionSeconds: 86400, maxReceiveCount: 5 },
        });
        assert.deepEqual([s.alarms.roundStuckSeconds, s.alarms.stalenessSeconds, s.alarms.roundsExpired], [300, 60, 0]);
        assert.equal(roundsActive(s), true);
    });

    it("size the thresholds' defaults from the fleet: a round to a million dashboards posts for 111 s at 9,000/s", () => {
        const s = load({ expectedDashboards: "1000000", pingIntervalSeconds: "300" });
        // 60 s lease + 2 x 1,000,000 / 9,000 (223 s) + 60 s for the schedule.
        assert.equal(s.alarms.roundStuckSeconds, 343);
        // Twice the design's bound: 2 x (223 s + the stream's 5 s window).
        assert.equal(s.alarms.stalenessSeconds, 456);
        // Unpaced, a round goes at the account throttle, 10,000/s.
        const unpaced = load({ expectedDashboards: "1000000", pingIntervalSeconds: "300", postBudgetPerSecond: "0" });
        assert.equal(unpaced.broadcast.postBudgetPerSecond, 0);
        assert.deepEqual([unpaced.alarms.roundStuckSeconds, unpaced.alarms.stalenessSeconds], [320, 410]);
    });

    it("take explicit values at or above what the design reaches", () => {
        const s = load({ broadcastMode: "batch", postBudgetPerSecond: "4000", roundLeaseSeconds: "120", roundStuckSeconds: "230", stalenessAlarmSeconds: "56", roundsExpiredThreshold: "3" });
        assert.deepEqual(
            [s.broadcast.mode, s.broadcast.postBudgetPerSecond, s.broadcast.roundLeaseSeconds, s.alarms.roundStuckSeconds, s.alarms.stalenessSeconds, s.alarms.roundsExpired],
            ["batch", 4000, 120, 230, 56, 3],
        );
        assert.equal(roundsActive(s), false);
        assert.equal(load({ processorTimeoutSeconds: "900" }).broadcast.tickQueue.visibilityTimeoutSeconds, 5400);
    });

    const rejected: [string, Record<string, string>, RegExp][] = [
        ["an unknown mode", { broadcastMode: "fast" }, /broadcastMode="fast" must be one of rounds, batch/],
        ["a negative budget", { postBudgetPerSecond: "-1" }, /postBudgetPerSecond=-1 must be between 0 and 1000000/],
        ["a budget the functions refuse", { postBudgetPerSecond: "1000001" }, /postBudgetPerSecond=1000001/],
        ["a budget that is not a number", { postBudgetPerSecond: "9k" }, /postBudgetPerSecond="9k" is not an integer/],
        ["a lease too short to page the registry", { roundLeaseSeconds: "5" }, /roundLeaseSeconds=5 must be between 10 and 3600/],
        ["a lease the functions refuse", { roundLeaseSeconds: "3601" }, /roundLeaseSeconds=3601/],
        // 60 s lease + 2 x 100,000 / 9,000 (23 s) + 60 s.
        ["a stuck-round threshold inside a lease", { roundStuckSeconds: "142" }, /roundStuckSeconds=142 is below 143 s, .*roundLeaseSeconds \(60\) \+ twice a round to expectedDashboards \(100000\) at postBudgetPerSecond 9000\/s \(23 s\) \+ 60 s/],
        ["a stuck-round threshold inside a longer lease", { roundLeaseSeconds: "600", roundStuckSeconds: "300" }, /roundStuckSeconds=300 is below 683 s/],
        ["a stuck-round threshold under CloudWatch's minute", { roundStuckSeconds: "59" }, /roundStuckSeconds=59 must be between 60 and 86400/],
        // 23 s + the stream's 5 s batching window.
        ["a staleness threshold the design reaches", { stalenessAlarmSeconds: "28" }, /stalenessAlarmSeconds=28 is not above 28 s, .*expectedDashboards \(100000\) and postBudgetPerSecond 9000\/s/],
        ["a staleness threshold under a small budget's rounds", { postBudgetPerSecond: "1000", stalenessAlarmSeconds: "60" }, /stalenessAlarmSeconds=60 is not above 205 s/],
        ["a negative expiry threshold", { roundsExpiredThreshold: "-1" }, /roundsExpiredThreshold=-1 must be between 0/],
    ];
    for (const [what, values, message] of rejected) {
        it(`reject ${what}`, () => {
            assert.throws(() => load(values), configError(message));
        });
    }

    it("the boundaries themselves are accepted", () => {
        assert.equal(load({ roundStuckSeconds: "143" }).alarms.roundStuckSeconds, 143);
        assert.equal(load({ stalenessAlarmSeconds: "29" }).alarms.stalenessSeconds, 29);
    });

    it("a small budget for a large fleet sizes its own defaults instead of failing", () => {
        // 100,000 dashboards at 1,000/s: 200 s for two rounds.
        const s = load({ postBudgetPerSecond: "1000" });
        assert.deepEqual([s.alarms.roundStuckSeconds, s.alarms.stalenessSeconds], [320, 410]);
    });
});

describe("round-stuck's missing data", () => {
    const missing = (values: Record<string, string>) =>
        alarmSpecs(load(values), { apiId: "a1b2c3d4e5", stageName: "prod" }).find((a) => a.name === "round-stuck")?.treatMissingData;

    it("breaches while rounds run: the schedule reports every minute, and silence is a broken safety net", () => {
        assert.equal(missing({}), "breaching");
    });

    it("does not in batch mode or with broadcasts switched off, where the schedule is disabled", () => {
        assert.equal(missing({ broadcastMode: "batch" }), "notBreaching");
        assert.equal(missing({ broadcastsEnabled: "false" }), "notBreaching");
    });
});

let p: Program;
before(async () => {
    p = await runProgram(
        {
            artifactsDir: fakeArtifacts(),
            metricsStreamArn: STREAM_ARN,
            stageName: "green",
            processorTimeoutSeconds: "120",
            postBudgetPerSecond: "6000",
            roundLeaseSeconds: "90",
            roundStuckSeconds: "420",
            stalenessAlarmSeconds: "45",
            roundsExpiredThreshold: "2",
            canaryEnabled: "false",
        },
        "green",
    );
});

describe("the broadcast state table", () => {
    it("is keyed pk/sk (strings), on demand, with TTL on expiresAt and point-in-time recovery", () => {
        const t = p.one("aws:dynamodb/table:Table", "broadcast-state").inputs;
        assert.equal(t.name, STATE_TABLE);
        assert.deepEqual([t.hashKey, t.rangeKey], ["pk", "sk"]);
        assert.deepEqual(t.attributes, [
            { name: "pk", type: "S" },
            { name: "sk", type: "S" },
        ]);
        assert.equal(t.billingMode, "PAY_PER_REQUEST");
        assert.deepEqual(t.ttl, { attributeName: "expiresAt", enabled: true });
        assert.deepEqual(t.pointInTimeRecovery, { enabled: true });
        assert.equal(t.globalSecondaryIndexes, undefined);
        assert.equal(t.streamEnabled, undefined);
        assert.equal(p.outputs.broadcastStateTableName, STATE_TABLE);
    });

    it("is protected as the other tables are: deletion protection, and Pulumi neither deletes nor replaces it", () => {
        const t = p.one("aws:dynamodb/table:Table", "broadcast-state");
        assert.equal(t.inputs.deletionProtectionEnabled, true);
        assert.deepEqual([t.options.protect, t.options.retainOnDelete], [true, true]);
    });
});

describe("the tick queue", () => {
    it("hides a batch for 6 processor timeouts, keeps ticks a day, encrypts, and redrives to its DLQ after 5 receives", () => {
        const q = p.one(QUEUE, "ticks").inputs;
        assert.equal(q.name, TICKS);
        assert.equal(p.one(FUNCTION, "processor").inputs.timeout, 120);
        assert.equal(q.visibilityTimeoutSeconds, 720);
        assert.equal(q.messageRetentionSeconds, 86400);
        assert.equal(q.sqsManagedSseEnabled, true);
        assert.deepEqual(JSON.parse(q.redrivePolicy), { deadLetterTargetArn: sqsArn(TICKS_DLQ), maxReceiveCount: 5 });
        assert.equal(p.outputs.tickQueueUrl, sqsUrl(TICKS));
    });

    it("its DLQ keeps ticks 14 days, and only the tick queue may redrive into it", () => {
        const dlq = p.one(QUEUE, "ticks-dlq").inputs;
        assert.equal(dlq.name, TICKS_DLQ);
        assert.equal(dlq.messageRetentionSeconds, 14 * 86400);
        assert.equal(dlq.sqsManagedSseEnabled, true);
        const allow = p.one("aws:sqs/redriveAllowPolicy:RedriveAllowPolicy", "ticks-dlq").inputs;
        assert.equal(allow.queueUrl, sqsUrl(TICKS_DLQ));
        assert.deepEqual(JSON.parse(allow.redriveAllowPolicy), { redrivePermission: "byQueue", sourceQueueArns: [sqsArn(TICKS)] });
        assert.equal(p.outputs.tickDlqUrl, sqsUrl(TICKS_DLQ));
    });

    it("feeds the processor's live alias ten ticks at a time, two invocations at most", () => {
        const m = p.one(MAPPING, "processor-ticks");
        assert.deepEqual(m.inputs, {
            functionName: `${PROCESSOR_ARN}:live`,
            eventSourceArn: sqsArn(TICKS),
            enabled: true,
            batchSize: 10,
            maximumBatchingWindowInSeconds: 0,
            functionResponseTypes: ["ReportBatchItemFailures"],
            scalingConfig: { maximumConcurrency: 2 },
        });
        // Lambda validates the role when it creates the mapping, which invokes the alias.
        assert.ok(p.dependsOn([MAPPING, "processor-ticks"], ["aws:iam/rolePolicy:RolePolicy", "processor"]));
        assert.ok(p.dependsOn([MAPPING, "processor-ticks"], ["aws:lambda/alias:Alias", "processor"]));
        assert.ok("tickMappingUuid" in p.outputs, "RUNBOOK reads the mapping's uuid");
    });
});

describe("the schedule (the safety tick)", () => {
    it("invokes the processor's live alias every minute, without retries", () => {
        const rule = p.one("aws:cloudwatch/eventRule:EventRule", "processor-tick").inputs;
        assert.deepEqual([rule.name, rule.scheduleExpression, rule.state], [`${PREFIX}-processor-tick`, "rate(1 minute)", "ENABLED"]);
        assert.equal(p.outputs.tickScheduleName, `${PREFIX}-processor-tick`);
        const target = p.one("aws:cloudwatch/eventTarget:EventTarget", "processor-tick").inputs;
        assert.deepEqual([target.rule, target.arn], [`${PREFIX}-processor-tick`, `${PROCESSOR_ARN}:live`]);
        assert.deepEqual(target.retryPolicy, { maximumRetryAttempts: 0, maximumEventAgeInSeconds: 60 });
        const invoke = p.one("aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig", "processor").inputs;
        assert.deepEqual([invoke.functionName, invoke.qualifier, invoke.maximumRetryAttempts, invoke.maximumEventAgeInSeconds], [`${PREFIX}-processor`, "live", 0, 60]);
    });

    it("may invoke the alias (EventBridge, this rule only), before its target exists", () => {
        const permission = p.one("aws:lambda/permission:Permission", "processor-tick").inputs;
        assert.deepEqual(
            [permission.action, permission.function, permission.qualifier, permission.principal, permission.sourceArn],
            ["lambda:InvokeFunction", `${PREFIX}-processor`, "live", "events.amazonaws.com", RULE_ARN],
        );
        assert.ok(p.dependsOn(["aws:cloudwatch/eventTarget:EventTarget", "processor-tick"], ["aws:lambda/permission:Permission", "processor-tick"]));
        assert.ok(p.dependsOn(["aws:lambda/permission:Permission", "processor-tick"], ["aws:lambda/alias:Alias", "processor"]));
    });
});

describe("the functions' variables", () => {
    const env = (fn: string) => p.one(FUNCTION, fn).inputs.environment.variables;

    it("processor: the mode, the budget, the lease, the state table and the tick queue", () => {
        const e = env("processor");
        assert.deepEqual(
            [e.BROADCAST_MODE, e.POST_BUDGET_PER_SECOND, e.ROUND_LEASE_SECONDS, e.STATE_TABLE_NAME, e.TICK_QUEUE_URL],
            ["rounds", "6000", "90", STATE_TABLE, sqsUrl(TICKS)],
        );
    });

    it("fanout: the same budget, state table and tick queue; no mode or lease", () => {
        const e = env("fanout");
        assert.deepEqual([e.POST_BUDGET_PER_SECOND, e.STATE_TABLE_NAME, e.TICK_QUEUE_URL], ["6000", STATE_TABLE, sqsUrl(TICKS)]);
        assert.equal(e.BROADCAST_MODE, undefined);
        assert.equal(e.ROUND_LEASE_SECONDS, undefined);
    });

    it("are the resources' own names, and no other function reads them (message: the state table, for snapshots)", () => {
        for (const fn of ["processor", "fanout"]) {
            assert.equal(env(fn).STATE_TABLE_NAME, p.outputs.broadcastStateTableName, fn);
            assert.equal(env(fn).TICK_QUEUE_URL, p.outputs.tickQueueUrl, fn);
        }
        assert.equal(env("message").STATE_TABLE_NAME, p.outputs.broadcastStateTableName);
        for (const fn of ["connect", "disconnect", "message"]) {
            for (const name of ["BROADCAST_MODE", "POST_BUDGET_PER_SECOND", "ROUND_LEASE_SECONDS", "TICK_QUEUE_URL"]) {
                assert.equal(env(fn)[name], undefined, `${fn} ${name}`);
            }
        }
        for (const fn of ["connect", "disconnect"]) assert.equal(env(fn).STATE_TABLE_NAME, undefined, fn);
        assert.deepEqual([p.outputs.broadcastMode, p.outputs.postBudgetPerSecond], ["rounds", 6000]);
    });
});

describe("what the functions may do to the rounds' resources", () => {
    const touching = (fn: string, arn: string): Statement[] => p.statements(fn).filter((s) => s.Resource.includes(arn));

    it("processor: get, put, update, delete and query the state table, only in its own partitions", () => {
        const [state, ...others] = touching("processor", STATE_TABLE_ARN);
        assert.deepEqual(others, []);
        assert.deepEqual(state.Resource, [STATE_TABLE_ARN]);
        assert.deepEqual([...state.Action].sort(), ["dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query", "dynamodb:UpdateItem"]);
        assert.deepEqual((state as any).Condition, { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": ["entity", "pending", "round"] } });
    });

    it("processor: send ticks, and what its tick mapping polls with; nothing else on the tick queue", () => {
        const g = grants(touching("processor", sqsArn(TICKS)));
        assert.deepEqual(g, {
            "sqs:SendMessage": [sqsArn(TICKS)],
            "sqs:ReceiveMessage": [sqsArn(TICKS)],
            "sqs:DeleteMessage": [sqsArn(TICKS)],
            "sqs:GetQueueAttributes": [sqsArn(TICKS)],
        });
    });

    it("fanout: put and update only (done jobs, the round's count and end, budget lanes), never a change", () => {
        const [state, ...others] = touching("fanout", STATE_TABLE_ARN);
        assert.deepEqual(others, []);
        assert.deepEqual([...state.Action].sort(), ["dynamodb:PutItem", "dynamodb:UpdateItem"]);
        assert.deepEqual((state as any).Condition, { "ForAllValues:StringLike": { "dynamodb:LeadingKeys": ["round", "done#*", "budget"] } });
        assert.deepEqual(grants(touching("fanout", sqsArn(TICKS))), { "sqs:SendMessage": [sqsArn(TICKS)] });
    });

    it("message: query the state table's entities, nothing else of it", () => {
        const [state, ...others] = touching("message", STATE_TABLE_ARN);
        assert.deepEqual(others, []);
        assert.deepEqual(state.Action, ["dynamodb:Query"]);
        assert.deepEqual((state as any).Condition, { "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": ["entity"] } });
    });

    it("no other function may touch the state table, the tick queue or its DLQ; nobody is granted the DLQ", () => {
        for (const fn of FUNCTIONS) {
            for (const arn of [STATE_TABLE_ARN, sqsArn(TICKS), sqsArn(TICKS_DLQ)]) {
                const found = touching(fn, arn);
                if ((fn === "processor" || fn === "fanout") && arn !== sqsArn(TICKS_DLQ)) continue;
                if (fn === "message" && arn === STATE_TABLE_ARN) continue;
                assert.deepEqual(found, [], `${fn} on ${arn}`);
            }
        }
    });
});

describe("the rounds' alarms", () => {
    const dimensions = { Service: "rounds", Stage: "green" };
    const alarm = (name: string) => p.one(ALARM, name).inputs;

    it("round-stuck: RoundAge (Maximum) over roundStuckSeconds for 2 minutes; silence breaches", () => {
        const a = alarm("round-stuck");
        assert.deepEqual(
            [a.namespace, a.metricName, a.dimensions, a.statistic, a.period, a.evaluationPeriods, a.datapointsToAlarm, a.threshold, a.treatMissingData],
            ["IopsDashboard", "RoundAge", dimensions, "Maximum", 60, 2, 2, 420000, "breaching"],
        );
        assert.match(a.alarmDescription, /more than 420 s .*RUNBOOK\.md, section "round-stuck"/);
    });

    it("staleness-high: Staleness (Maximum) over stalenessAlarmSeconds for 3 of 3 minutes; a quiet system does not page", () => {
        const a = alarm("staleness-high");
        assert.deepEqual(
            [a.namespace, a.metricName, a.dimensions, a.statistic, a.extendedStatistic, a.period, a.evaluationPeriods, a.datapointsToAlarm, a.threshold, a.treatMissingData],
            ["IopsDashboard", "Staleness", dimensions, "Maximum", undefined, 60, 3, 3, 45000, "notBreaching"],
        );
        assert.match(a.alarmDescription, /RUNBOOK\.md, section "staleness-high"/);
    });

    it("rounds-expired: RoundsExpired (Sum) over roundsExpiredThreshold in 5 minutes", () => {
        const a = alarm("rounds-expired");
        assert.deepEqual(
            [a.namespace, a.metricName, a.dimensions, a.statistic, a.period, a.evaluationPeriods, a.threshold, a.treatMissingData],
            ["IopsDashboard", "RoundsExpired", dimensions, "Sum", 300, 1, 2, "notBreaching"],
        );
    });
});

describe("the dashboard's rounds", () => {
    const widgets = () => JSON.parse(p.one("aws:cloudwatch/dashboard:Dashboard", "dashboard").inputs.dashboardBody).widgets as any[];
    const titled = (prefix: string) => {
        const w = widgets().find((x) => typeof x.properties.title === "string" && x.properties.title.startsWith(prefix));
        assert.ok(w, `no widget "${prefix}..."`);
        return w;
    };
    const rowsOf = (w: any) => w.properties.metrics.filter((r: any[]) => r[0] === "IopsDashboard").map((r: any[]) => [r[3], r[1], r[r.length - 1].stat]);

    it("posts per second: SUM(Posts) / PERIOD against a line at the budget and one at the account throttle", () => {
        const w = titled("posts per second against the budget");
        const rows: any[][] = w.properties.metrics;
        const posts = rows.find((r) => r[1] === "Posts");
        assert.ok(posts);
        assert.deepEqual(posts.slice(2, 6), ["Service", "fanout", "Stage", "green"]);
        assert.deepEqual([posts[6].id, posts[6].stat, posts[6].visible], ["posts", "Sum", false]);
        const expression = rows.find((r) => r.length === 1 && r[0].expression);
        assert.equal(expression?.[0].expression, "posts / PERIOD(posts)");
        assert.deepEqual(w.properties.annotations.horizontal.map((h: any) => h.value), [6000, 10000]);
        assert.ok(rowsOf(w).some(([s, m]: string[]) => s === "fanout" && m === "BudgetWait"));
    });

    it("staleness p50 and p99 (and the alarm's maximum) against the alarm's threshold", () => {
        const w = titled("staleness, p50");
        assert.deepEqual(rowsOf(w), [
            ["rounds", "Staleness", "p50"],
            ["rounds", "Staleness", "p99"],
            ["rounds", "Staleness", "Maximum"],
        ]);
        assert.deepEqual(w.properties.annotations.horizontal.map((h: any) => h.value), [45000]);
    });

    it("round duration, round age, pending entities, rounds started and expired", () => {
        const shown = widgets().flatMap((w) => (w.properties.metrics ? rowsOf(w) : []));
        for (const [service, metric, stat] of [
            ["rounds", "RoundDuration", "p50"],
            ["rounds", "RoundDuration", "p99"],
            ["rounds", "RoundAge", "Maximum"],
            ["rounds", "PendingEntities", "Maximum"],
            ["rounds", "RoundEntities", "Average"],
            ["rounds", "RoundsStarted", "Sum"],
            ["rounds", "RoundsExpired", "Sum"],
            ["processor", "ChangesPending", "Sum"],
            ["processor", "ChangesStale", "Sum"],
        ]) {
            assert.ok(shown.some((r: string[]) => r[0] === service && r[1] === metric && r[2] === stat), `${service} ${metric} ${stat}`);
        }
    });
});
