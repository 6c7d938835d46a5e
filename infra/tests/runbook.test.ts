// RUNBOOK.md and metrics.json against what the program really deploys, both ways:
// - every alarm has its own section under "## Alarms", and every section there is an alarm;
// - every metric an alarm or the dashboard uses in the functions' namespace is in metrics.json,
//   with every catalogue dimension (Service, Stage), and every metric in metrics.json is on the
//   dashboard;
// - what the runbook tells the on-call engineer to type names real things (outputs, config keys,
//   catalogued metrics, headings, scripts), parses as bash, refreshes before every update, and
//   calls AWS CLI commands that exist, with options they take.

import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { before, describe, it } from "node:test";

import { cataloguedMetrics, DIMENSIONS, NAMESPACE } from "../catalogue";
import { fakeArtifacts, Program, Recorded, runProgram } from "./harness";

const ROOT = path.join(__dirname, "..", "..");
const RUNBOOK = fs.readFileSync(path.join(ROOT, "RUNBOOK.md"), "utf8");
const README = fs.readFileSync(path.join(ROOT, "README.md"), "utf8");
/** The scripts the runbook runs (scripts/ops-*.sh). */
const OPS_SCRIPTS = fs
    .readdirSync(path.join(ROOT, "scripts"))
    .filter((f) => /^ops-.*\.sh$/.test(f))
    .map((f) => ({ name: `scripts/${f}`, text: fs.readFileSync(path.join(ROOT, "scripts", f), "utf8") }));
// Every setting: config.ts, and the canary's own in canary.ts.
const CONFIG_SOURCE = ["config.ts", "canary.ts"].map((f) => fs.readFileSync(path.join(__dirname, "..", f), "utf8")).join("\n");
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

/** Every metric an alarm reads, with its statistic: its own, or its metric-math inputs. */
function alarmedMetrics(alarm: Recorded): { namespace: string; metricName: string; dimensions: Record<string, string>; stat: string }[] {
    const a = alarm.inputs;
    if (a.metricQueries !== undefined) {
        return a.metricQueries.filter((q: any) => q.metric).map((q: any) => ({ ...q.metric, stat: q.metric.stat }));
    }
    return [{ namespace: a.namespace, metricName: a.metricName, dimensions: a.dimensions, stat: a.statistic ?? a.extendedStatistic }];
}

let p: Program;
let alarmResources: Recorded[];
const all = sections(RUNBOOK);
const alarmSecs = alarmSections(all);

before(async () => {
    // Authentication on, with every key source: every alarm and function the runbook may name
    // exists (with authMode none the authorizer's alarms, a subset, do not).
    p = await runProgram({
        artifactsDir: fakeArtifacts(),
        createMetricsTable: "true",
        authMode: "jwt",
        authJwtSecretArn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:iops-ws/test/jwt-a1B2c3",
        authJwtSecretKmsKeyArn: "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        authJwksUrl: "https://issuer.example.com/.well-known/jwks.json",
    });
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

    it("every alarm section confirms with the alarm's exact metric (each input of a metric-math alarm)", () => {
        for (const alarm of alarmResources) {
            const s = alarmSecs.find((x) => x.heading.split(/[\s`]+/).includes(alarm.name));
            assert.ok(s);
            for (const m of alarmedMetrics(alarm)) {
                const line = `metric ${m.namespace} ${m.metricName} ${m.stat}`;
                assert.ok(s.body.includes(line), `section ${alarm.name} lacks "${line}"`);
            }
            assert.ok(s.body.includes(`alarm ${alarm.name}\n`), `section ${alarm.name} lacks "alarm ${alarm.name}"`);
        }
    });
});

describe("metrics.json, the one list of the functions' metric names", () => {
    const catalogue = cataloguedMetrics();
    const catalogued = (service: string, name: string) => catalogue.some((m) => m.service === service && m.name === name);

    it("the functions emit every catalogue dimension: Service and Stage, in that order", () => {
        assert.deepEqual(DIMENSIONS, ["Service", "Stage"]);
    });

    it("every alarm on the functions' namespace uses a catalogued metric of its service, in this stage", () => {
        const own = alarmResources.flatMap((a) => alarmedMetrics(a).map((m) => ({ alarm: a.name, ...m }))).filter((m) => m.namespace === NAMESPACE);
        assert.ok(own.length >= 6);
        for (const m of own) {
            // Every dimension the functions emit, or the alarm reads a metric nobody writes.
            assert.deepEqual(Object.keys(m.dimensions), DIMENSIONS, m.alarm);
            assert.equal(m.dimensions.Stage, "prod", m.alarm);
            assert.ok(catalogued(m.dimensions.Service, m.metricName), `${m.alarm}: ${m.dimensions.Service}/${m.metricName} is not in metrics.json`);
        }
    });

    it("the dashboard shows every catalogued metric, and only catalogued ones in that namespace, in this stage", () => {
        const body = JSON.parse(p.one("aws:cloudwatch/dashboard:Dashboard", "dashboard").inputs.dashboardBody);
        const shown = new Set<string>();
        for (const w of body.widgets) {
            for (const row of w.properties.metrics ?? []) {
                if (row[0] !== NAMESPACE) continue;
                assert.deepEqual([row[2], row[4], row[5]], ["Service", "Stage", "prod"], `dashboard row ${JSON.stringify(row)}`);
                assert.equal(typeof row[6], "object", "options after the two dimensions");
                assert.ok(catalogued(row[3], row[1]), `dashboard: ${row[3]}/${row[1]} is not in metrics.json`);
                shown.add(`${row[3]}/${row[1]}`);
            }
        }
        for (const m of catalogue) assert.ok(shown.has(`${m.service}/${m.name}`), `${m.service}/${m.name} is not on the dashboard`);
    });

    it("every metric the runbook looks up in that namespace is catalogued, with both dimensions", () => {
        const re = new RegExp(`metric ${NAMESPACE} (\\w+) (\\w+)((?: Name=[^\\s,]+,Value=[^\\s\`']+)*)`, "g");
        const uses = [...RUNBOOK.matchAll(re)];
        assert.ok(uses.length >= 10);
        for (const [line, name, , dims] of uses) {
            const pairs = [...dims.matchAll(/Name=([^\s,]+),Value=([^\s`']+)/g)].map((m) => [m[1], m[2]]);
            assert.deepEqual(pairs.map(([k]) => k), DIMENSIONS, `RUNBOOK: "${line}" must name ${DIMENSIONS.join(" and ")}`);
            assert.equal(pairs[1][1], "$STAGE", `RUNBOOK: "${line}" must look in this stack's stage`);
            assert.ok(catalogued(pairs[0][1], name), `RUNBOOK: ${pairs[0][1]}/${name}`);
        }
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
            // Schedules (`aws events describe-rule --name "$P-..."`).
            ...p.all("aws:cloudwatch/eventRule:EventRule").map((r) => r.inputs.name),
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

/**
 * What an engineer types: the bash blocks and the inline `code` spans of RUNBOOK.md and of the
 * README's section on AWS, and the ops scripts, each with where it comes from.
 */
function typedText(): { where: string; text: string }[] {
    const out: { where: string; text: string }[] = [];
    const fromMarkdown = (name: string, markdown: string) => {
        for (const block of codeBlocks(markdown, "(?:bash|sh)")) out.push({ where: `${name} block`, text: block });
        const prose = markdown.replace(/```[\s\S]*?```/g, "");
        for (const m of prose.matchAll(/`([^`]+)`/g)) out.push({ where: `${name} inline`, text: m[1] });
    };
    fromMarkdown("RUNBOOK.md", RUNBOOK);
    const aws = README.slice(README.indexOf("## Running the functions on AWS"));
    fromMarkdown("README.md", aws.slice(0, aws.indexOf("\n## ", 3) < 0 ? undefined : aws.indexOf("\n## ", 3)));
    for (const s of OPS_SCRIPTS) out.push({ where: s.name, text: s.text });
    return out;
}

/** Single commands: continuations joined, comments dropped, split at pipes, `&&`, `;`, `$(`. */
function commands(text: string): string[] {
    return text
        .replace(/\\\n\s*/g, " ")
        .split("\n")
        .map((line) => line.replace(/(^|\s)#.*$/, ""))
        .flatMap((line) => line.split(/\|\||&&|\||;|\$\(|\)/))
        .map((c) => c.trim())
        .filter((c) => c.length > 0);
}

/** The quoted parts of a command blanked out, so options are read only where the shell sees them. */
function unquoted(command: string): string {
    return command.replace(/'[^']*'/g, "''").replace(/"(?:[^"\\]|\\.)*"/g, '""');
}

interface AwsCall {
    where: string;
    command: string;
    service: string;
    operation: string;
    options: string[];
    queries: string[];
}

function awsCalls(): AwsCall[] {
    const calls: AwsCall[] = [];
    for (const { where, text } of typedText()) {
        for (const command of commands(text)) {
            const m = /(?:^|\s)aws\s+([a-z0-9-]+)(?:\s+([a-z0-9-]+))?(.*)$/.exec(unquoted(command));
            if (!m) continue;
            const raw = /(?:^|\s)aws\s+[a-z0-9-]+(?:\s+[a-z0-9-]+)?(.*)$/.exec(command)![1];
            calls.push({
                where,
                command,
                service: m[1],
                operation: m[2] ?? "",
                options: [...m[3].matchAll(/(?:^|\s)--([a-z0-9-]+)/g)].map((o) => o[1]),
                queries: [...raw.matchAll(/--query '([^']*)'/g)].map((q) => q[1]),
            });
        }
    }
    return calls;
}

/**
 * The AWS CLI commands the runbook and the ops scripts may use. A new one goes here after
 * `aws <service> <command> help` shows it (the check below does that when awscli is installed).
 */
const KNOWN_AWS_COMMANDS: Record<string, string[]> = {
    apigatewayv2: ["get-authorizers", "get-integrations", "get-routes", "get-stage"],
    cloudwatch: ["describe-alarm-history", "describe-alarms", "get-metric-statistics"],
    dynamodb: ["delete-table", "describe-continuous-backups", "describe-table", "describe-time-to-live", "get-item", "query", "update-item", "update-table", "update-time-to-live"],
    dynamodbstreams: ["get-records", "get-shard-iterator"],
    events: ["describe-rule"],
    iam: ["simulate-principal-policy"],
    lambda: [
        "get-account-settings",
        "get-alias",
        "get-event-source-mapping",
        "get-function-configuration",
        "get-policy",
        "invoke",
        "list-versions-by-function",
        "publish-version",
        "put-function-concurrency",
        "update-alias",
        "update-event-source-mapping",
        "update-function-configuration",
    ],
    logs: ["get-query-results", "start-query"],
    secretsmanager: ["create-secret", "describe-secret", "get-secret-value", "list-secret-version-ids", "put-secret-value", "update-secret-version-stage"],
    "service-quotas": ["list-aws-default-service-quotas", "list-requested-service-quota-change-history", "list-service-quotas", "request-service-quota-increase"],
    sqs: [
        "cancel-message-move-task",
        "change-message-visibility",
        "delete-message",
        "get-queue-attributes",
        "list-message-move-tasks",
        "purge-queue",
        "receive-message",
        "send-message",
        "start-message-move-task",
    ],
    sts: ["get-caller-identity"],
};

/** Global options of the AWS CLI v2 that v1 (what PyPI's awscli installs) lacks. */
const V2_GLOBALS = ["cli-binary-format", "no-cli-pager", "cli-auto-prompt", "no-cli-auto-prompt"];

/** Checks every call against the installed AWS CLI's own command tables, and every literal --query. */
const AWSCLI_CHECK = String.raw`
import json, sys
from awscli.clidriver import create_clidriver
import jmespath
calls = json.load(sys.stdin)
driver = create_clidriver()
services = driver._get_command_table()
global_args = set(driver._get_argument_table().keys()) | set(sys.argv[1].split(","))
problems = []
for c in calls:
    where = "%s: %s" % (c["where"], c["command"])
    service = services.get(c["service"])
    if service is None:
        problems.append("%s: no service %s" % (where, c["service"])); continue
    operation = service._get_command_table().get(c["operation"])
    if operation is None:
        problems.append("%s: %s has no command %s" % (where, c["service"], c["operation"])); continue
    allowed = set(operation.arg_table.keys()) | global_args
    for o in c["options"]:
        if o not in allowed:
            problems.append("%s: %s %s takes no --%s" % (where, c["service"], c["operation"], o))
    for q in c["queries"]:
        try:
            jmespath.compile(q)
        except Exception as e:
            problems.append("%s: --query %r: %s" % (where, q, e))
print(json.dumps(problems))
`;
const hasAwscli = spawnSync("python3", ["-c", "import awscli, jmespath"]).status === 0;

describe("RUNBOOK.md commands refresh and exist", () => {
    it("every `pulumi up` and `pulumi preview` refreshes first (plain `pulumi up` compares with its saved state, not AWS)", () => {
        let seen = 0;
        for (const { where, text } of typedText()) {
            for (const command of commands(text)) {
                if (!/\bpulumi (up|preview)\b/.test(command)) continue;
                seen++;
                assert.match(command, /\s--refresh\b|\s-r\b/, `${where}: "${command}" does not refresh`);
            }
        }
        assert.ok(seen >= 15, `only ${seen} pulumi up/preview commands found`);
    });

    it("every AWS CLI command is one the runbook is known to use", () => {
        const calls = awsCalls();
        assert.ok(calls.length >= 60, `only ${calls.length} aws commands found`);
        for (const c of calls) {
            assert.ok(c.service in KNOWN_AWS_COMMANDS, `${c.where}: "${c.command}": unknown service ${c.service}`);
            assert.ok(KNOWN_AWS_COMMANDS[c.service].includes(c.operation), `${c.where}: "${c.command}": unknown command ${c.service} ${c.operation}`);
        }
    });

    it("quota lookups list default quotas too (list-service-quotas omits quotas never changed)", () => {
        const calls = awsCalls();
        const listed = calls.filter((c) => c.service === "service-quotas" && c.operation === "list-service-quotas");
        const defaults = calls.filter((c) => c.service === "service-quotas" && c.operation === "list-aws-default-service-quotas");
        assert.ok(listed.length > 0);
        assert.ok(defaults.length >= listed.length, "each list-service-quotas needs its list-aws-default-service-quotas");
    });

    it("every AWS CLI command exists in the AWS CLI with the options given, and every --query compiles", { skip: hasAwscli ? false : "awscli is not installed (pip install awscli)" }, () => {
        const calls = awsCalls();
        const r = spawnSync("python3", ["-c", AWSCLI_CHECK, V2_GLOBALS.join(",")], { input: JSON.stringify(calls), encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        assert.deepEqual(JSON.parse(r.stdout), []);
    });

    it("the replay procedure runs the script, which gates the delete on the processor's success", () => {
        const section = all.find((s) => s.heading === "Replay failed stream batches");
        assert.ok(section);
        assert.match(section.body, /scripts\/ops-replay-stream-dlq\.sh/);
        // No hand-written invoke-then-delete left in the runbook.
        assert.ok(!/aws lambda invoke/.test(codeBlocks(RUNBOOK, "bash").join("\n")), "an aws lambda invoke in a RUNBOOK block");
    });

    it("every script it names exists and is executable", () => {
        const named = new Set([...RUNBOOK.matchAll(/\bscripts\/[\w.-]+/g)].map((m) => m[0]));
        assert.ok(named.size >= 1);
        for (const name of named) {
            const file = path.join(ROOT, name);
            assert.ok(fs.existsSync(file), `RUNBOOK names ${name}, which does not exist`);
            assert.ok((fs.statSync(file).mode & 0o111) !== 0, `${name} is not executable`);
        }
    });

    it("the rollback moves the alias with update-alias and pins the version in config", () => {
        const section = all.find((s) => s.heading === "Roll back a deploy");
        assert.ok(section);
        assert.match(section.body, /aws lambda update-alias --function-name "\$P-\$FN" --name live --function-version "\$V"/);
        assert.match(section.body, /aws lambda list-versions-by-function/);
        assert.match(section.body, /pulumi config set "\$\{FN\}LiveVersion" "\$V"/);
        assert.ok(!/make package/.test(codeBlocks(section.body, "bash").join("\n").split("ls ../target")[0]), "the alias rollback needs no build");
        for (const fn of ["connect", "disconnect", "message", "processor", "fanout", "authorizer", "canary"]) {
            assert.ok(CONFIG_SOURCE.includes(`"${fn}LiveVersion"`), `config.ts reads no ${fn}LiveVersion`);
        }
        // Every function the program can deploy is in the rollback loops.
        for (const loop of section.body.matchAll(/for FN in ([a-z ]+); do/g)) {
            assert.deepEqual(loop[1].trim().split(/\s+/), ["connect", "disconnect", "message", "processor", "fanout", "authorizer", "canary"]);
        }
    });

    it("the secret rotation puts a new version, moves the authorizer to a new version, says old tokens keep verifying, and rolls back the secret", () => {
        const section = all.find((s) => s.heading === "Rotate the JWT secret");
        assert.ok(section);
        const bash = codeBlocks(section.body, "bash").join("\n");
        assert.match(bash, /aws secretsmanager put-secret-value --secret-id "\$SECRET_ARN"/);
        assert.match(bash, /pulumi config set authSecretGeneration "\$\(\(G \+ 1\)\)"\s+pulumi up --refresh/);
        assert.match(bash, /aws secretsmanager update-secret-version-stage --secret-id "\$SECRET_ARN" --version-stage AWSCURRENT/);
        assert.match(section.body, /tokens signed with the old one keep\s+verifying until they expire/);
        assert.match(section.body, /to revoke\s+a leaked secret rotate twice/);
        // The value is never printed: only its version id and length are read back.
        for (const m of bash.replace(/\\\n\s*/g, " ").matchAll(/aws secretsmanager get-secret-value[^\n]*/g)) {
            assert.match(m[0], /--query (VersionId|SecretString|'\[VersionId,length\(SecretString\)\]')/, m[0]);
        }
        assert.ok(CONFIG_SOURCE.includes('"authSecretGeneration"'));
    });

    it("authentication is turned on and off with authMode, and 401/403 have a section", () => {
        const section = all.find((s) => s.heading === "Turn authentication on or off");
        assert.ok(section);
        const bash = codeBlocks(section.body, "bash").join("\n");
        assert.match(bash, /pulumi config set authMode jwt\n/);
        assert.match(bash, /pulumi config set authMode none /);
        assert.ok(all.some((s) => s.heading === "Dashboards get 401 or 403"));
    });
});
