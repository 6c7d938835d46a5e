// authMode jwt with an HS256 secret in Secrets Manager under a customer-managed key, a JWKS, an
// issuer and audiences: the authorizer function, its least privilege, the API Gateway authorizer
// on $connect (which cannot be reached without it), its alarms and graph, and the order the
// engine creates them in, checked against Pulumi's mocks.

import * as assert from "node:assert/strict";
import { before, describe, it } from "node:test";

import { ACCOUNT, API_ID, fakeArtifacts, grants, Program, PUBLISHED_VERSION, REGION, runProgram } from "./harness";

const PREFIX = "iops-ws-test";
const SECRET_ARN = `arn:aws:secretsmanager:${REGION}:${ACCOUNT}:secret:iops-ws/test/jwt-a1B2c3`;
const KMS_KEY_ARN = `arn:aws:kms:${REGION}:${ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab`;
const JWKS_URL = `https://cognito-idp.${REGION}.amazonaws.com/${REGION}_Example/.well-known/jwks.json`;
const ISSUER = `https://cognito-idp.${REGION}.amazonaws.com/${REGION}_Example`;
const EXECUTION_ARN = `arn:aws:execute-api:${REGION}:${ACCOUNT}:${API_ID}`;
const FN_ARN = `arn:aws:lambda:${REGION}:${ACCOUNT}:function:${PREFIX}-authorizer`;
const ALIAS_INVOKE_ARN = `arn:aws:apigateway:${REGION}:lambda:path/2015-03-31/functions/${FN_ARN}:live/invocations`;
const LOG_GROUP_ARN = `arn:aws:logs:${REGION}:${ACCOUNT}:log-group:/aws/lambda/${PREFIX}-authorizer`;

const FUNCTION = "aws:lambda/function:Function";
const ALIAS = "aws:lambda/alias:Alias";
const AUTHORIZER = "aws:apigatewayv2/authorizer:Authorizer";
const PERMISSION = "aws:lambda/permission:Permission";
const ROUTE = "aws:apigatewayv2/route:Route";
const STAGE = "aws:apigatewayv2/stage:Stage";
const ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm";

let p: Program;
before(async () => {
    p = await runProgram({
        artifactsDir: fakeArtifacts("x86_64", "0123456789ab"),
        createMetricsTable: "true",
        authMode: "jwt",
        authJwtSecretArn: SECRET_ARN,
        authJwtSecretKmsKeyArn: KMS_KEY_ARN,
        authJwksUrl: JWKS_URL,
        authIssuer: ISSUER,
        authAudience: " dashboards, ops ,",
        authSecretGeneration: "3",
        authDeniedAlarmThreshold: "250",
    });
});

describe("the authorizer function", () => {
    it("runs provided.al2023 bootstrap with a short timeout, its own role and log group, behind `live`", () => {
        const f = p.one(FUNCTION, "authorizer").inputs;
        assert.equal(f.name, `${PREFIX}-authorizer`);
        assert.equal(f.runtime, "provided.al2023");
        assert.equal(f.handler, "bootstrap");
        assert.equal(f.memorySize, 256);
        // API Gateway waits 29 s at most; the JWKS fetch is bounded at 3 s.
        assert.equal(f.timeout, 5);
        assert.equal(f.role, `arn:aws:iam::${ACCOUNT}:role/${PREFIX}-authorizer`);
        assert.equal(f.loggingConfig.logGroup, `/aws/lambda/${PREFIX}-authorizer`);
        assert.equal(f.publish, true);
        assert.equal(p.one("aws:cloudwatch/logGroup:LogGroup", "authorizer").inputs.retentionInDays, 30);
        const alias = p.one(ALIAS, "authorizer").inputs;
        assert.deepEqual([alias.name, alias.functionName, alias.functionVersion], ["live", `${PREFIX}-authorizer`, PUBLISHED_VERSION]);
        assert.equal(p.outputs.functionNames.authorizer, `${PREFIX}-authorizer`);
    });

    it("its environment names the secret by ARN and carries no secret value", () => {
        const env = p.one(FUNCTION, "authorizer").inputs.environment.variables;
        assert.deepEqual(env, {
            RUST_LOG: "info",
            STAGE: "prod",
            AUTH_MODE: "jwt",
            AUTH_JWT_SECRET_ARN: SECRET_ARN,
            AUTH_JWKS_URL: JWKS_URL,
            AUTH_ISSUER: ISSUER,
            AUTH_AUDIENCE: "dashboards,ops",
            AUTH_SECRET_GENERATION: "3",
        });
        // The value is fetched at cold start; AUTH_JWT_SECRET is the local stack's only.
        assert.equal("AUTH_JWT_SECRET" in env, false);
        assert.equal(env.STAGE, p.outputs.stageName);
    });

    it("may read exactly that secret, and decrypt with its key only through Secrets Manager, for that secret", () => {
        const statements = p.statements("authorizer");
        assert.deepEqual(grants(statements), {
            "logs:CreateLogStream": [LOG_GROUP_ARN, `${LOG_GROUP_ARN}:*`],
            "logs:PutLogEvents": [LOG_GROUP_ARN, `${LOG_GROUP_ARN}:*`],
            "secretsmanager:GetSecretValue": [SECRET_ARN],
            "kms:Decrypt": [KMS_KEY_ARN],
        });
        const decrypt = statements.find((s) => s.Action.includes("kms:Decrypt")) as any;
        assert.deepEqual(decrypt.Condition, {
            StringEquals: {
                "kms:ViaService": `secretsmanager.${REGION}.amazonaws.com`,
                "kms:EncryptionContext:SecretARN": SECRET_ARN,
            },
        });
        for (const s of statements) assert.ok(!s.Resource.includes("*"), s.Sid);
    });

    it("the other functions learn nothing about authentication", () => {
        for (const fn of ["connect", "disconnect", "message", "processor", "fanout"]) {
            const env = p.one(FUNCTION, fn).inputs.environment.variables;
            assert.deepEqual(Object.keys(env).filter((n) => n.startsWith("AUTH_")), [], fn);
            assert.equal(grants(p.statements(fn))["secretsmanager:GetSecretValue"], undefined, fn);
        }
    });
});

describe("the API Gateway authorizer", () => {
    it("is a REQUEST authorizer invoking the live alias, with no identity source (the token may come either way)", () => {
        const a = p.one(AUTHORIZER, "authorizer").inputs;
        assert.equal(a.apiId, API_ID);
        assert.equal(a.authorizerType, "REQUEST");
        assert.equal(a.authorizerUri, ALIAS_INVOKE_ARN);
        assert.equal(a.authorizerUri, p.one(ALIAS, "authorizer").state.invokeArn);
        assert.equal(a.name, `${PREFIX}-jwt`);
        // Any listed source must be present or API Gateway answers 401 itself: listing
        // querystring.token would refuse every client that sends a subprotocol, and vice versa.
        assert.equal(a.identitySources, undefined);
        assert.equal(a.authorizerCredentialsArn, undefined);
        assert.equal(p.outputs.authorizerId, "authorizer-id");
        assert.equal(p.outputs.authMode, "jwt");
    });

    it("API Gateway may invoke the alias, as an authorizer of this API only", () => {
        const perm = p.one(PERMISSION, "authorizer").inputs;
        assert.deepEqual(perm, {
            action: "lambda:InvokeFunction",
            function: `${PREFIX}-authorizer`,
            qualifier: "live",
            principal: "apigateway.amazonaws.com",
            sourceArn: `${EXECUTION_ARN}/authorizers/*`,
        });
    });

    it("$connect cannot be reached without it: CUSTOM authorization with its id; the other routes carry none", () => {
        const connect = p.one(ROUTE, "connect").inputs;
        assert.equal(connect.authorizationType, "CUSTOM");
        assert.equal(connect.authorizerId, p.outputs.authorizerId);
        for (const route of ["disconnect", "message"]) {
            const r = p.one(ROUTE, route).inputs;
            // API Gateway allows an authorizer on $connect only; the connection passed it.
            assert.equal(r.authorizationType, undefined, route);
            assert.equal(r.authorizerId, undefined, route);
        }
        assert.equal(p.all(AUTHORIZER).length, 1);
    });
});

describe("creation order", () => {
    it("the authorizer exists only once its permission does, which exists once the alias does", () => {
        assert.ok(p.dependsOn([AUTHORIZER, "authorizer"], [PERMISSION, "authorizer"]));
        assert.ok(p.dependsOn([PERMISSION, "authorizer"], [ALIAS, "authorizer"]));
        assert.ok(p.dependsOn([AUTHORIZER, "authorizer"], [ALIAS, "authorizer"]));
    });

    it("$connect waits for the authorizer; the stage for every route and the authorizer", () => {
        assert.ok(p.dependsOn([ROUTE, "connect"], [AUTHORIZER, "authorizer"]));
        for (const route of ["connect", "disconnect", "message"]) {
            assert.ok(p.dependsOn([STAGE, "stage"], [ROUTE, route]), route);
        }
        assert.ok(p.dependsOn([STAGE, "stage"], [AUTHORIZER, "authorizer"]));
    });

    it("the function is created after its log group and role policy", () => {
        assert.ok(p.dependsOn([FUNCTION, "authorizer"], ["aws:cloudwatch/logGroup:LogGroup", "authorizer"]));
        assert.ok(p.dependsOn([FUNCTION, "authorizer"], ["aws:iam/rolePolicy:RolePolicy", "authorizer"]));
    });
});

describe("alarms and the dashboard", () => {
    const authorizer = { Service: "authorizer", Stage: "prod" };

    it("authorizer-errors: Errors less the 401s (Unauthorized), or KeysUnavailable, above functionErrorsThreshold", () => {
        const a = p.one(ALARM, "authorizer-errors").inputs;
        assert.equal(a.name, `${PREFIX}-authorizer-errors`);
        const queries: any[] = a.metricQueries;
        const inputs = Object.fromEntries(
            queries.filter((q) => q.metric).map((q) => [q.id, [q.metric.namespace, q.metric.metricName, q.metric.dimensions, q.metric.stat, q.metric.period]]),
        );
        assert.deepEqual(inputs, {
            errors: ["AWS/Lambda", "Errors", { FunctionName: `${PREFIX}-authorizer` }, "Sum", 300],
            unauthorized: ["IopsDashboard", "Unauthorized", authorizer, "Sum", 300],
            keys: ["IopsDashboard", "KeysUnavailable", authorizer, "Sum", 300],
        });
        const expressions = Object.fromEntries(queries.filter((q) => q.expression).map((q) => [q.id, [q.expression, q.returnData]]));
        assert.deepEqual(expressions, {
            e: ["FILL(errors, 0)", false],
            u: ["FILL(unauthorized, 0)", false],
            k: ["FILL(keys, 0)", false],
            failed: ["e - u", false],
            alarmed: ["MAX([failed, k])", true],
        });
        assert.deepEqual([a.threshold, a.evaluationPeriods, a.treatMissingData], [0, 1, "notBreaching"]);
        // No plain Errors alarm beside it: every tokenless client would page someone.
        assert.equal(p.all(ALARM).filter((x) => x.name === "authorizer-errors").length, 1);
    });

    it("authorizer-denials-surge: Denied (Service+Stage) summed over 5 minutes above authDeniedAlarmThreshold", () => {
        const a = p.one(ALARM, "authorizer-denials-surge").inputs;
        assert.deepEqual(
            [a.namespace, a.metricName, a.dimensions, a.statistic, a.period, a.evaluationPeriods, a.threshold, a.treatMissingData],
            ["IopsDashboard", "Denied", authorizer, "Sum", 300, 1, 250, "notBreaching"],
        );
        assert.match(a.alarmDescription, /RUNBOOK\.md, section "authorizer-denials-surge"/);
    });

    it("authorizer-throttles, like every function's", () => {
        const a = p.one(ALARM, "authorizer-throttles").inputs;
        assert.deepEqual([a.metricName, a.dimensions], ["Throttles", { FunctionName: `${PREFIX}-authorizer` }]);
    });

    it("the dashboard graphs the authorizer's four decisions", () => {
        const body = JSON.parse(p.one("aws:cloudwatch/dashboard:Dashboard", "dashboard").inputs.dashboardBody);
        const w = body.widgets.find((x: any) => x.properties.title === "authorizer decisions ($connect)");
        assert.ok(w);
        assert.deepEqual(
            w.properties.metrics.map((r: any[]) => r.slice(0, 6)),
            ["Allowed", "Denied", "Unauthorized", "KeysUnavailable"].map((m) => ["IopsDashboard", m, "Service", "authorizer", "Stage", "prod"]),
        );
    });
});
