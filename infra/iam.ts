// One role per function, each with an inline policy that lists exactly the actions the code
// calls on exactly the resources it calls them on. No managed policies: even
// AWSLambdaBasicExecutionRole grants logs:CreateLogGroup on every log group.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

/** Operator -> condition key -> value(s), e.g. `{ "ForAllValues:StringEquals": { "dynamodb:LeadingKeys": ["a", "b"] } }`. */
export type Condition = Record<string, Record<string, string | string[]>>;

export interface Statement {
    Sid: string;
    Effect: "Allow";
    Action: string[];
    Resource: pulumi.Input<string>[];
    Condition?: Condition;
}

export function allow(sid: string, actions: string[], resources: pulumi.Input<string>[], condition?: Condition): Statement {
    for (const action of actions) {
        if (action.includes("*")) throw new Error(`IAM statement ${sid}: wildcard action ${action}`);
    }
    const statement: Statement = { Sid: sid, Effect: "Allow", Action: actions, Resource: resources };
    if (condition !== undefined) statement.Condition = condition;
    return statement;
}

/**
 * Writing to its own log group, which the program creates (so no logs:CreateLogGroup). The
 * provider's log group ARN has no `:*`; the streams under it are `<arn>:log-stream:<name>`,
 * which `<arn>:*` (the form AWS's Lambda policies use) covers.
 */
export function ownLogGroup(logGroupArn: pulumi.Input<string>): Statement {
    return allow(
        "OwnLogGroup",
        ["logs:CreateLogStream", "logs:PutLogEvents"],
        [logGroupArn, pulumi.interpolate`${logGroupArn}:*`],
    );
}

export function lambdaRole(
    name: string,
    functionName: string,
    statements: Statement[],
): { role: aws.iam.Role; policy: aws.iam.RolePolicy } {
    const role = new aws.iam.Role(name, {
        name: functionName,
        description: `Execution role of the ${functionName} function`,
        assumeRolePolicy: JSON.stringify({
            Version: "2012-10-17",
            Statement: [
                {
                    Effect: "Allow",
                    Principal: { Service: "lambda.amazonaws.com" },
                    Action: "sts:AssumeRole",
                },
            ],
        }),
    });
    const policy = new aws.iam.RolePolicy(name, {
        name: functionName,
        role: role.id,
        policy: pulumi.jsonStringify({ Version: "2012-10-17", Statement: statements }),
    });
    return { role, policy };
}
