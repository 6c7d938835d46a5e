// The fallback: broadcastMode batch (every stream batch broadcast at once, the first design) with
// the posting budget off (postBudgetPerSecond 0), on Pulumi's mocks. The rounds' resources stay,
// so that switching back is one variable; the schedule has nothing to do and is disabled, and
// round-stuck does not count its silence.

import * as assert from "node:assert/strict";
import { before, describe, it } from "node:test";

import { fakeArtifacts, Program, runProgram } from "./harness";

const PREFIX = "iops-ws-fallback";

let p: Program;
before(async () => {
    p = await runProgram(
        { artifactsDir: fakeArtifacts(), createMetricsTable: "true", broadcastMode: "batch", postBudgetPerSecond: "0", canaryEnabled: "false" },
        "fallback",
    );
});

describe("batch mode, unpaced", () => {
    it("the processor broadcasts per batch and the fanout posts unpaced; both still name the state table and the tick queue", () => {
        const env = (fn: string) => p.one("aws:lambda/function:Function", fn).inputs.environment.variables;
        assert.equal(env("processor").BROADCAST_MODE, "batch");
        for (const fn of ["processor", "fanout"]) {
            assert.equal(env(fn).POST_BUDGET_PER_SECOND, "0", fn);
            assert.equal(env(fn).STATE_TABLE_NAME, `${PREFIX}-broadcast-state`, fn);
            assert.match(env(fn).TICK_QUEUE_URL, new RegExp(`/${PREFIX}-ticks$`), fn);
        }
        assert.deepEqual([p.outputs.broadcastMode, p.outputs.postBudgetPerSecond], ["batch", 0]);
    });

    it("the state table and the tick queue stay (switching back is one variable); the schedule is disabled", () => {
        assert.equal(p.one("aws:dynamodb/table:Table", "broadcast-state").inputs.name, `${PREFIX}-broadcast-state`);
        assert.equal(p.one("aws:lambda/eventSourceMapping:EventSourceMapping", "processor-ticks").inputs.enabled, true);
        assert.equal(p.one("aws:cloudwatch/eventRule:EventRule", "processor-tick").inputs.state, "DISABLED");
    });

    it("round-stuck does not count the schedule's silence; the other rounds' alarms stay (they get no data)", () => {
        const alarm = (name: string) => p.one("aws:cloudwatch/metricAlarm:MetricAlarm", name).inputs;
        assert.equal(alarm("round-stuck").treatMissingData, "notBreaching");
        assert.equal(alarm("staleness-high").treatMissingData, "notBreaching");
        assert.equal(alarm("rounds-expired").treatMissingData, "notBreaching");
    });

    it("the posts-per-second graph draws the account throttle only", () => {
        const body = JSON.parse(p.one("aws:cloudwatch/dashboard:Dashboard", "dashboard").inputs.dashboardBody);
        const w = body.widgets.find((x: any) => x.properties.title === "posts per second (unpaced: postBudgetPerSecond 0)");
        assert.ok(w);
        assert.deepEqual(w.properties.annotations.horizontal.map((h: any) => h.value), [10000]);
    });
});
