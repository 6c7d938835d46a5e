// RUNBOOK.md and metrics.json against what the program really deploys, both ways:
// - every alarm has its own section under "## Alarms", and every section there is an alarm;
// - every metric an alarm or the dashboard uses in the functions' namespace is in metrics.json,
//   and every metric in metrics.json is on the dashboard;
// - what the runbook tells the on-call engineer to type names real things (outputs, config keys,
//   catalogued metrics, headings) and parses as bash.

import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";

import { cataloguedMetrics, DIMENSION, NAMESPACE } from "../catalogue";
import { fakeArtifacts, Program, Recorded, runProgram } from "./harness";

const RUNBOOK = fs.readFileSync(path.join(__dirname, "..", "..", "RUNBOOK.md"), "utf8");
const CONFIG_SOURCE = fs.readFileSync(path.join(__dirname, "..", "config.ts"), "utf8");
const PREFIX = "iops-ws-test";

interface Section {
    level: number;
    heading: string;
    body: string;
}

/** The `##` / `###` sections outside code blocks, each with the text up to the next heading. */
function sections(markdown: string): Section[] {
    const out: Section[] = [];
    let inCode = false;
    for (const line of markdown.split("\n")) {
        if (line.trimStart().startsWith("```")) inCode = !inCode;
        const m = !inCode && /^(#{2,3}) (.+)$/.exec(line);
        if (m) out.push({ level: m[1].length, heading: m[2].trim(), body: "" });
        else if (out.length > 0) out[out.length - 1].body += `${line}\n`;
    }
    return out;
}

/** The `###` sections between `## Alarms` and the next `##`. */
function alarmSections(all: Section[]): Section[] {
    const start = all.findIndex((s) => s.level === 2 && s.heading === "Alarms");
    assert.ok(start >= 0, "RUNBOOK.md has no '## Alarms' section");
    const rest = all.slice(start + 1);
    const end = rest.findIndex((s) => s.level === 2);
    return end < 0 ? rest : rest.slice(0, end);
}

/** GitHub's anchor for a heading. */
function slug(heading: string): string {
    return heading
        .toLowerCase()
        .replace(/[^\p{L}\p{N} _-]/gu, "")
        .replace(/ /g, "-");
}

function codeBlocks(markdown: string, language: string): string[] {
    const re = new RegExp("```" + language + "\\n([\\s\\S]*?)```", "g");
    return [...markdown.matchAll(re)].map((m) => m[1]);
}

let p: Program;
let alarmResources: Recorded[];
const all = sections(RUNBOOK);
const alarmSecs = alarmSections(all);

before(async () => {
    p = await runProgram({ artifactsDir: fakeArtifacts() });
    alarmResources = p.all("aws:cloudwatch/metricAlarm:MetricAlarm");
    assert.ok(alarmResources.length > 0);
});

describe("RUNBOOK.md alarm sections", () => {
    it("every alarm has a section whose heading is its logical name", () => {
        for (const alarm of alarmResources) {
            assert.equal(alarm.inputs.name, `${PREFIX}-${alarm.name}`, "CloudWatch name = prefix + logical name");
            const matching = alarmSecs.filter((s) => s.heading.split(/[\s`]+/).includes(alarm.name));
            assert.equal(matching.length, 1, `alarm ${alarm.name}: ${matching.length} sections under "## Alarms"`);
        }
    });

    it("every section under '## Alarms' is an alarm the program defines", () => {
        const names = new Set(alarmResources.map((a) => a.name));
        for (const s of alarmSecs) {
            const found = s.heading.split(/[\s`]+/).filter((word) => names.has(word));
            assert.equal(found.length, 1, `section "${s.heading}" names no alarm (or several)`);
        }
        assert.equal(alarmSecs.length, alarmResources.length);
    });

    it("every alarm section says what it means, how to confirm, what to do and when to escalate", () => {
        for (const s of alarmSecs) {
            for (const label of ["**Means.**", "**Confirm.**", "**Act.**", "**Escalate"]) {
                assert.ok(s.body.includes(label), `section ${s.heading} lacks ${label}`);
            }
        }
    });

    it("every alarm section confirms with the alarm's exact metric", () => {
        for (const alarm of alarmResources) {
            const s = alarmSecs.find((x) => x.heading.split(/[\s`]+/).includes(alarm.name));
            assert.ok(s);
            const line = `metric ${alarm.inputs.namespace} ${alarm.inputs.metricName} ${alarm.inputs.statistic ?? alarm.inputs.extendedStatistic}`;
            assert.ok(s.body.includes(line), `section ${alarm.name} lacks "${line}"`);
            assert.ok(s.body.includes(`alarm ${alarm.name}\n`), `section ${alarm.name} lacks "alarm ${alarm.name}"`);
        }
    });
});

describe("metrics.json, the one list of the functions' metric names", () => {
    const catalogue = cataloguedMetrics();
    const catalogued = (service: string, name: string) => catalogue.some((m) => m.service === service && m.name === name);

    it("every alarm on the functions' namespace uses a catalogued metric of its service", () => {
        const own = alarmResources.filter((a) => a.inputs.namespace === NAMESPACE);
        assert.ok(own.length >= 4);
        for (const a of own) {
            assert.deepEqual(Object.keys(a.inputs.dimensions), [DIMENSION], a.name);
            const service = a.inputs.dimensions[DIMENSION];
            assert.ok(catalogued(service, a.inputs.metricName), `${a.name}: ${service}/${a.inputs.metricName} is not in metrics.json`);
        }
    });

    it("the dashboard shows every catalogued metric, and only catalogued ones in that namespace", () => {
        const body = JSON.parse(p.one("aws:cloudwatch/dashboard:Dashboard", "dashboard").inputs.dashboardBody);
        const shown = new Set<string>();
        for (const w of body.widgets) {
            for (const row of w.properties.metrics ?? []) {
                if (row[0] !== NAMESPACE) continue;
                assert.equal(row[2], DIMENSION);
                assert.ok(catalogued(row[3], row[1]), `dashboard: ${row[3]}/${row[1]} is not in metrics.json`);
                shown.add(`${row[3]}/${row[1]}`);
            }
        }
        for (const m of catalogue) assert.ok(shown.has(`${m.service}/${m.name}`), `${m.service}/${m.name} is not on the dashboard`);
    });

    it("every metric the runbook looks up in that namespace is catalogued", () => {
        const re = new RegExp(`metric ${NAMESPACE} (\\w+) \\w+ Name=${DIMENSION},Value=(\\w+)`, "g");
        const uses = [...RUNBOOK.matchAll(re)];
        assert.ok(uses.length >= 10);
        for (const [, name, service] of uses) assert.ok(catalogued(service, name), `RUNBOOK: ${service}/${name}`);
    });
});

describe("RUNBOOK.md commands", () => {
    it("every bash block parses", () => {
        const blocks = codeBlocks(RUNBOOK, "bash");
        assert.ok(blocks.length >= 20);
        for (const block of blocks) {
            const r = spawnSync("bash", ["-n"], { input: block, encoding: "utf8" });
            assert.equal(r.status, 0, `${r.stderr}\n${block}`);
        }
    });

    it("every `pulumi stack output` it reads is a stack output", () => {
        const names = [...RUNBOOK.matchAll(/pulumi stack output (\w+)/g)].map((m) => m[1]);
        assert.ok(names.length >= 10);
        for (const name of names) assert.ok(name in p.outputs, `no stack output ${name}`);
    });

    it("every config key it names is one config.ts reads", () => {
        const keys = new Set([
            ...[...RUNBOOK.matchAll(/pulumi config (?:set|get) ([\w:]+)/g)].map((m) => m[1]).filter((k) => !k.includes(":")),
            ...[...RUNBOOK.matchAll(/config\s+`(\w+)`/g)].map((m) => m[1]),
        ]);
        assert.ok(keys.size >= 10);
        for (const key of keys) assert.ok(CONFIG_SOURCE.includes(`"${key}"`), `config.ts reads no key ${key}`);
    });

    it("every internal link points at a heading", () => {
        const anchors = new Set(all.map((s) => slug(s.heading)));
        const links = [...RUNBOOK.matchAll(/\]\(#([^)]+)\)/g)].map((m) => m[1]);
        assert.ok(links.length >= 10);
        for (const link of links) assert.ok(anchors.has(link), `no heading for #${link}`);
    });

    it("every function, queue and log group it names with <P> exists", () => {
        const names = new Set([
            ...p.all("aws:lambda/function:Function").map((r) => r.inputs.name),
            ...p.all("aws:sqs/queue:Queue").map((r) => r.inputs.name),
            ...p.all("aws:cloudwatch/logGroup:LogGroup").map((r) => r.inputs.name),
        ]);
        const mentioned = [...RUNBOOK.matchAll(/\$P-([a-z-]+[a-z])/g)].map((m) => `${PREFIX}-${m[1]}`);
        const logGroups = [...RUNBOOK.matchAll(/\/aws\/lambda\/\$P-([a-z-]+[a-z])/g)].map((m) => `/aws/lambda/${PREFIX}-${m[1]}`);
        const alarmNames = new Set(alarmResources.map((a) => `${PREFIX}-${a.name}`));
        assert.ok(mentioned.length >= 20);
        for (const name of [...mentioned, ...logGroups]) {
            assert.ok(names.has(name) || alarmNames.has(name) || name === `${PREFIX}-websocket`, `RUNBOOK names ${name}, which the program does not create`);
        }
    });
});
