// Runs the Pulumi program (index.ts) against Pulumi's mocks: no CLI, no cloud. Every resource
// the program registers is recorded with the inputs it was given and the options the engine
// would receive (its direct dependencies, protect, retainOnDelete); the mocks answer with the
// attributes AWS would (ARNs, URLs, ids, published versions), so tests can check that one
// resource names another, and that one is created before another.

import * as fs from "fs";
import * as os from "os";
import * as path from "path";

import * as pulumi from "@pulumi/pulumi";

import { writeLambdaZip } from "./fixtures";

export const PROJECT = "iops-ws";
export const REGION = "us-east-1";
export const ACCOUNT = "123456789012";
export const API_ID = "a1b2c3d4e5";
/** The functions every stack deploys. */
export const FUNCTIONS = ["connect", "disconnect", "message", "processor", "fanout"] as const;
/** Every zip `make package` builds: those, the authorizer (deployed with authMode jwt) and the canary. */
export const ARTIFACTS = [...FUNCTIONS, "authorizer", "canary"] as const;
/** The version the mocked Lambda publishes. */
export const PUBLISHED_VERSION = "7";

export interface Recorded {
    type: string;
    name: string;
    inputs: Record<string, any>;
    state: Record<string, any>;
    /** What the engine is told: direct dependencies (as `type::name`) and lifecycle options. */
    options: { dependsOn: string[]; protect: boolean; retainOnDelete: boolean };
}

export interface Statement {
    Sid: string;
    Effect: string;
    Action: string[];
    Resource: string[];
}

export interface Program {
    resources: Recorded[];
    outputs: Record<string, any>;
    /** Resources of one type, e.g. `aws:sqs/queue:Queue`. */
    all(type: string): Recorded[];
    /** The one resource of `type` with the Pulumi name `name`. */
    one(type: string, name: string): Recorded;
    /** The statements of the inline policy of the role named `name`. */
    statements(name: string): Statement[];
    /** Whether the engine creates `b` (type, name) before `a`: `b` is a direct dependency of `a`. */
    dependsOn(a: [string, string], b: [string, string]): boolean;
}

function attributes(type: string, name: string, inputs: Record<string, any>): { id: string; state: Record<string, any> } {
    const physical: string = inputs.name ?? name;
    const arn = (service: string, resource: string) => `arn:aws:${service}:${REGION}:${ACCOUNT}:${resource}`;
    switch (type) {
        case "aws:dynamodb/table:Table": {
            const tableArn = arn("dynamodb", `table/${physical}`);
            const stream = inputs.streamEnabled ? { streamArn: `${tableArn}/stream/2026-01-01T00:00:00.000` } : {};
            return { id: physical, state: { ...inputs, arn: tableArn, ...stream } };
        }
        case "aws:sqs/queue:Queue": {
            const url = `https://sqs.${REGION}.amazonaws.com/${ACCOUNT}/${physical}`;
            return { id: url, state: { ...inputs, arn: arn("sqs", physical), url } };
        }
        case "aws:apigatewayv2/api:Api":
            return {
                id: API_ID,
                state: {
                    ...inputs,
                    apiEndpoint: `wss://${API_ID}.execute-api.${REGION}.amazonaws.com`,
                    executionArn: arn("execute-api", API_ID),
                    arn: `arn:aws:apigateway:${REGION}::/apis/${API_ID}`,
                },
            };
        case "aws:apigatewayv2/stage:Stage":
            return {
                id: physical,
                state: {
                    ...inputs,
                    invokeUrl: `wss://${API_ID}.execute-api.${REGION}.amazonaws.com/${physical}`,
                    executionArn: arn("execute-api", `${API_ID}/${physical}`),
                },
            };
        case "aws:lambda/function:Function": {
            const fnArn = arn("lambda", `function:${physical}`);
            // `publish: true` makes Lambda number a version; otherwise only $LATEST exists.
            const version = inputs.publish ? PUBLISHED_VERSION : "$LATEST";
            return {
                id: physical,
                state: {
                    ...inputs,
                    arn: fnArn,
                    version,
                    qualifiedArn: `${fnArn}:${version}`,
                    invokeArn: `arn:aws:apigateway:${REGION}:lambda:path/2015-03-31/functions/${fnArn}/invocations`,
                },
            };
        }
        case "aws:lambda/alias:Alias": {
            const aliasArn = `${arn("lambda", `function:${inputs.functionName}`)}:${physical}`;
            return {
                id: aliasArn,
                state: {
                    ...inputs,
                    arn: aliasArn,
                    invokeArn: `arn:aws:apigateway:${REGION}:lambda:path/2015-03-31/functions/${aliasArn}/invocations`,
                },
            };
        }
        case "aws:cloudwatch/logGroup:LogGroup":
            return { id: physical, state: { ...inputs, arn: arn("logs", `log-group:${physical}`) } };
        case "aws:iam/role:Role":
            return { id: physical, state: { ...inputs, arn: `arn:aws:iam::${ACCOUNT}:role/${physical}` } };
        case "aws:cloudwatch/eventRule:EventRule":
            return { id: physical, state: { ...inputs, arn: arn("events", `rule/${physical}`) } };
        case "aws:sns/topic:Topic":
            return { id: arn("sns", physical), state: { ...inputs, arn: arn("sns", physical) } };
        default:
            return { id: `${name}-id`, state: { ...inputs } };
    }
}

/**
 * `<fn>/bootstrap.zip`s as `make package` leaves them: real zips whose `bootstrap` is an ELF
 * header for `arch`, with package.sh's manifest when `git` is given.
 */
export function fakeArtifacts(arch: "x86_64" | "arm64" = "x86_64", git?: string): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "iops-ws-artifacts-"));
    process.on("exit", () => fs.rmSync(dir, { recursive: true, force: true }));
    for (const fn of ARTIFACTS) {
        writeLambdaZip(dir, fn, arch);
        if (git !== undefined) {
            fs.writeFileSync(path.join(dir, fn, "bootstrap.json"), JSON.stringify({ function: fn, arch, git }));
        }
    }
    return dir;
}

/** The parts of the engine's RegisterResourceRequest the harness reads. */
interface RegisterRequest {
    getType(): string;
    getName(): string;
    getDependenciesList(): string[];
    getProtect(): boolean | undefined;
    getRetainondelete(): boolean | undefined;
}

function promiseOf<T>(output: pulumi.Output<T>): Promise<T> {
    return new Promise((resolve) => output.apply((value) => resolve(value)));
}

async function resolveDeep(value: unknown): Promise<unknown> {
    if (pulumi.Output.isInstance(value)) return promiseOf(value as pulumi.Output<unknown>);
    if (value !== null && typeof value === "object") {
        const entries = await Promise.all(Object.entries(value).map(async ([k, v]) => [k, await resolveDeep(v)] as const));
        return Object.fromEntries(entries);
    }
    return value;
}

/** Waits until no resource has been registered for a while: the program has finished. */
async function settle(resources: Recorded[]): Promise<void> {
    let seen = -1;
    let quiet = 0;
    for (let i = 0; i < 500 && quiet < 5; i++) {
        await new Promise((r) => setTimeout(r, 10));
        quiet = resources.length === seen ? quiet + 1 : 0;
        seen = resources.length;
    }
}

/**
 * Runs index.ts once in this process with the given stack config (keys without the project
 * prefix); `node --test` runs each test file in a process of its own.
 */
export async function runProgram(config: Record<string, string>, stack = "test"): Promise<Program> {
    const resources: Recorded[] = [];
    const options = new Map<string, Recorded["options"]>();
    pulumi.runtime.setAllConfig(
        Object.fromEntries(Object.entries(config).map(([k, v]) => [k.includes(":") ? k : `${PROJECT}:${k}`, v])),
    );
    await pulumi.runtime.setMocks(
        {
            newResource(args: pulumi.runtime.MockResourceArgs) {
                const { id, state } = attributes(args.type, args.name, args.inputs);
                const recorded = options.get(`${args.type}::${args.name}`) ?? { dependsOn: [], protect: false, retainOnDelete: false };
                resources.push({ type: args.type, name: args.name, inputs: args.inputs, state, options: recorded });
                return { id, state };
            },
            call(args: pulumi.runtime.MockCallArgs) {
                if (args.token === "aws:index/getRegion:getRegion") {
                    return { id: REGION, name: REGION, region: REGION, endpoint: `ec2.${REGION}.amazonaws.com`, description: "" };
                }
                throw new Error(`unexpected call ${args.token}`);
            },
        },
        PROJECT,
        stack,
        false,
    );
    // The mock monitor sees the engine's request, which the mocks' callback does not: record the
    // dependencies (explicit dependsOn and the resources whose outputs are inputs) and options.
    const monitor = pulumi.runtime.getMonitor() as unknown as {
        registerResource(req: RegisterRequest, callback: unknown): unknown;
    };
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req: RegisterRequest, callback: unknown) => {
        options.set(`${req.getType()}::${req.getName()}`, {
            // urn:pulumi:<stack>::<project>::<type>::<name>
            dependsOn: req.getDependenciesList().map((urn) => urn.split("::").slice(-2).join("::")),
            protect: req.getProtect() === true,
            retainOnDelete: req.getRetainondelete() === true,
        });
        return register(req, callback);
    };
    const program: Record<string, unknown> = await import("../index");
    const outputs = (await resolveDeep({ ...program })) as Record<string, any>;
    await settle(resources);

    const all = (type: string) => resources.filter((r) => r.type === type);
    const one = (type: string, name: string) => {
        const found = all(type).filter((r) => r.name === name);
        if (found.length !== 1) throw new Error(`expected one ${type} named ${name}, found ${found.length}`);
        return found[0];
    };
    return {
        resources,
        outputs,
        all,
        one,
        statements: (name: string) => JSON.parse(one("aws:iam/rolePolicy:RolePolicy", name).inputs.policy).Statement,
        dependsOn: ([aType, aName], [bType, bName]) => one(aType, aName).options.dependsOn.includes(`${bType}::${bName}`),
    };
}

/** `{ action: [resources] }` over all statements, to compare a policy as a whole. */
export function grants(statements: Statement[]): Record<string, string[]> {
    const out: Record<string, string[]> = {};
    for (const s of statements) {
        if (s.Effect !== "Allow") throw new Error(`unexpected effect ${s.Effect}`);
        for (const action of s.Action) out[action] = [...(out[action] ?? []), ...s.Resource].sort();
    }
    return out;
}
