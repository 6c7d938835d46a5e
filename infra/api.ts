// The API Gateway WebSocket API: $connect, $disconnect and $default, each a Lambda proxy
// integration; a $default route response so that what the message function returns (PONG,
// ERROR, snapshots) reaches the client; with authMode jwt, the authorizer on $connect
// (authorizer.ts); one stage with access and execution logs and throttles.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { connectAuthorizer, ConnectAuthorizer } from "./authorizer";
import { Settings } from "./config";
import { RustFunction } from "./functions";

export const ROUTES = {
    $connect: "connect",
    $disconnect: "disconnect",
    $default: "message",
} as const;
export type RouteKey = keyof typeof ROUTES;

export interface WebSocketApi {
    api: aws.apigatewayv2.Api;
    stage: aws.apigatewayv2.Stage;
    /** `wss://{apiId}.execute-api.{region}.amazonaws.com/{stage}`, for clients. */
    websocketUrl: pulumi.Output<string>;
    /** `https://{apiId}.execute-api.{region}.amazonaws.com/{stage}`: WEBSOCKET_API_ENDPOINT. */
    managementEndpoint: pulumi.Output<string>;
    /**
     * What execute-api:ManageConnections is granted on: this stage's POST @connections only
     * (PostToConnection). Nothing calls DeleteConnection or GetConnection: a gone connection
     * answers 410 and only its row is deleted.
     */
    manageConnectionsArns: pulumi.Output<string>[];
    accessLogGroup: aws.cloudwatch.LogGroup;
    /** $connect's authorizer, with authMode jwt. */
    auth?: ConnectAuthorizer;
}

/**
 * The API itself, before its routes: the message function, which a route invokes, posts
 * snapshots through the API's management endpoint, so it is created between the two.
 */
export function websocketApiResource(settings: Settings): aws.apigatewayv2.Api {
    return new aws.apigatewayv2.Api("websocket", {
        name: `${settings.prefix}-websocket`,
        protocolType: "WEBSOCKET",
        // No route matches an `action` today, so every client message goes to $default.
        routeSelectionExpression: "$request.body.action",
        description: "IOps dashboard METRICS_UPDATE fan-out",
    });
}

/**
 * How a function posts to the connections of `api`'s stage `stageName`: the endpoint
 * (WEBSOCKET_API_ENDPOINT) and what execute-api:ManageConnections is granted on.
 */
export function managementAccess(
    api: aws.apigatewayv2.Api,
    stageName: pulumi.Input<string>,
): Pick<WebSocketApi, "managementEndpoint" | "manageConnectionsArns"> {
    return {
        managementEndpoint: pulumi.interpolate`${api.apiEndpoint.apply((e) => e.replace(/^wss:\/\//, "https://"))}/${stageName}`,
        manageConnectionsArns: [pulumi.interpolate`${api.executionArn}/${stageName}/POST/@connections/*`],
    };
}

/**
 * The API's routes and stage. `authorizerFunction` is the `authorizer` function, which exists
 * exactly when authMode is jwt: then $connect can only be reached through it.
 */
export function websocketApi(
    settings: Settings,
    api: aws.apigatewayv2.Api,
    handlers: Record<RouteKey, RustFunction>,
    authorizerFunction?: RustFunction,
): WebSocketApi {
    const stageName = settings.api.stageName;
    if ((settings.auth.mode === "jwt") !== (authorizerFunction !== undefined)) {
        throw new Error(`authMode ${settings.auth.mode} ${authorizerFunction === undefined ? "needs" : "takes no"} authorizer function`);
    }

    const auth = settings.auth.mode === "jwt" && authorizerFunction !== undefined
        ? connectAuthorizer(settings, settings.auth, api, authorizerFunction)
        : undefined;

    const routes: aws.apigatewayv2.Route[] = [];
    for (const routeKey of Object.keys(ROUTES) as RouteKey[]) {
        const handler = handlers[routeKey];
        const logical = ROUTES[routeKey];
        // API Gateway may invoke the `live` alias (the resource policy is on that qualifier),
        // for this stage and route only: arn:aws:execute-api:{region}:{account}:{apiId}/{stage}/{routeKey}
        const permission = new aws.lambda.Permission(logical, {
            action: "lambda:InvokeFunction",
            function: handler.function.name,
            qualifier: handler.alias.name,
            principal: "apigateway.amazonaws.com",
            sourceArn: pulumi.interpolate`${api.executionArn}/${stageName}/${routeKey}`,
        });
        const integration = new aws.apigatewayv2.Integration(
            logical,
            {
                apiId: api.id,
                integrationType: "AWS_PROXY",
                integrationMethod: "POST",
                // The alias, never the unqualified function: a rollback moves what runs.
                integrationUri: handler.alias.invokeArn,
            },
            // Pointed at the alias only once the alias may be invoked: no window of 500s.
            { dependsOn: [permission] },
        );
        const route = new aws.apigatewayv2.Route(logical, {
            apiId: api.id,
            routeKey,
            target: pulumi.interpolate`integrations/${integration.id}`,
            // Two-way route: the integration's response body is sent back to the client.
            ...(routeKey === "$default" ? { routeResponseSelectionExpression: "$default" } : {}),
            // Only $connect takes an authorizer on a WebSocket API; the other routes belong to a
            // connection that passed it. Without one, NONE: the seed's open $connect.
            ...(routeKey === "$connect"
                ? auth !== undefined
                    ? { authorizationType: "CUSTOM", authorizerId: auth.authorizer.id }
                    : { authorizationType: "NONE" }
                : {}),
        });
        if (routeKey === "$default") {
            new aws.apigatewayv2.RouteResponse(logical, {
                apiId: api.id,
                routeId: route.id,
                routeResponseKey: "$default",
            });
        }
        routes.push(route);
    }

    // The stage's first deployment (autoDeploy) then has every route and $connect's authorizer.
    const dependsOn: pulumi.Resource[] = [...routes];
    if (auth !== undefined) dependsOn.push(auth.authorizer);
    if (settings.api.manageAccount) {
        dependsOn.push(apiGatewayAccountLogging(settings));
    }

    const accessLogGroup = new aws.cloudwatch.LogGroup("api-access", {
        name: `/aws/apigateway/${settings.prefix}-websocket/access`,
        retentionInDays: settings.logRetentionDays,
    });
    // API Gateway writes execution logs to this fixed name; created here for its retention.
    const executionLogGroup = new aws.cloudwatch.LogGroup("api-execution", {
        name: pulumi.interpolate`API-Gateway-Execution-Logs_${api.id}/${stageName}`,
        retentionInDays: settings.logRetentionDays,
    });
    dependsOn.push(accessLogGroup, executionLogGroup);

    const stage = new aws.apigatewayv2.Stage(
        "stage",
        {
            apiId: api.id,
            name: stageName,
            autoDeploy: true,
            defaultRouteSettings: {
                throttlingRateLimit: settings.api.throttleRate,
                throttlingBurstLimit: settings.api.throttleBurst,
                loggingLevel: settings.api.loggingLevel,
                dataTraceEnabled: false,
                detailedMetricsEnabled: true,
            },
            routeSettings: [
                {
                    // New connections are limited per account and region (500/s by default).
                    routeKey: "$connect",
                    throttlingRateLimit: settings.api.connectThrottleRate,
                    throttlingBurstLimit: settings.api.connectThrottleBurst,
                    loggingLevel: settings.api.loggingLevel,
                    dataTraceEnabled: false,
                    detailedMetricsEnabled: true,
                },
            ],
            accessLogSettings: {
                destinationArn: accessLogGroup.arn,
                format: JSON.stringify({
                    requestId: "$context.requestId",
                    requestTime: "$context.requestTimeEpoch",
                    connectionId: "$context.connectionId",
                    eventType: "$context.eventType",
                    routeKey: "$context.routeKey",
                    status: "$context.status",
                    sourceIp: "$context.identity.sourceIp",
                    integrationStatus: "$context.integration.status",
                    integrationLatency: "$context.integration.latency",
                    integrationError: "$context.integration.error",
                    error: "$context.error.message",
                    errorType: "$context.error.responseType",
                }),
            },
        },
        { dependsOn },
    );

    return {
        api,
        stage,
        websocketUrl: pulumi.interpolate`${api.apiEndpoint}/${stage.name}`,
        ...managementAccess(api, stage.name),
        accessLogGroup,
        auth,
    };
}

/**
 * The account-wide (per region) role API Gateway logs with. Without it a stage with logging
 * cannot be created ("CloudWatch Logs role ARN must be set in account settings"), so the first
 * deploy in a fresh account needs it. Only one stack per account and region should manage it:
 * set `manageApiGatewayAccount: true` there, false everywhere else. Every stack's logging depends
 * on it, so destroying the stack that set it must not take it away: the role, its policy and
 * the setting stay behind (retainOnDelete).
 */
function apiGatewayAccountLogging(settings: Settings): aws.apigateway.Account {
    const retained = { retainOnDelete: true };
    const role = new aws.iam.Role(
        "apigateway-cloudwatch",
        {
            name: `${settings.prefix}-apigateway-cloudwatch`,
            assumeRolePolicy: JSON.stringify({
                Version: "2012-10-17",
                Statement: [
                    {
                        Effect: "Allow",
                        Principal: { Service: "apigateway.amazonaws.com" },
                        Action: "sts:AssumeRole",
                    },
                ],
            }),
        },
        retained,
    );
    const attachment = new aws.iam.RolePolicyAttachment(
        "apigateway-cloudwatch",
        {
            role: role.name,
            policyArn: "arn:aws:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs",
        },
        retained,
    );
    return new aws.apigateway.Account("apigateway-account", { cloudwatchRoleArn: role.arn }, { ...retained, dependsOn: [attachment] });
}
