// $connect authentication (authMode jwt): the API's Lambda REQUEST authorizer, which invokes the
// `authorizer` function's `live` alias before $connect runs, and what that function may call.
// With authMode none none of this exists and $connect is open, as in the seed.
//
// Identity sources: API Gateway calls the function only when EVERY listed source is present, and
// answers 401 itself otherwise. A dashboard sends its token either as `?token=` or as a
// subprotocol (`Sec-WebSocket-Protocol`: browsers cannot set other headers on a WebSocket), never
// both, so any one listed source would turn the other way away. A WebSocket REQUEST authorizer
// may have none ("For a REQUEST authorizer, this is optional": API Gateway V2 CreateAuthorizer,
// IdentitySource; there is no authorizer caching on WebSocket APIs for them to key), so by
// default none is listed and the function answers `Unauthorized` (401) when neither carries a
// token. Config authIdentitySources lists some for stacks whose clients all use one way.

import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

import { JwtAuthSettings, Settings } from "./config";
import { RustFunction } from "./functions";
import { allow, Statement } from "./iam";

export interface ConnectAuthorizer {
    authorizer: aws.apigatewayv2.Authorizer;
    permission: aws.lambda.Permission;
}

/**
 * What the function calls besides its logs: GetSecretValue on exactly the configured secret,
 * and, for a secret under a customer-managed key, Decrypt on that key only through Secrets
 * Manager and only for that secret (its encryption context). A secret under the AWS-managed
 * key (aws/secretsmanager) needs no KMS grant: that key's policy allows Secrets Manager's callers.
 * The JWKS is fetched over the internet (https), which needs no permission.
 */
export function authorizerStatements(auth: JwtAuthSettings): Statement[] {
    const statements: Statement[] = [];
    if (auth.secretArn !== undefined) {
        statements.push(allow("ReadJwtSecret", ["secretsmanager:GetSecretValue"], [auth.secretArn]));
        if (auth.secretKmsKeyArn !== undefined) {
            const region = auth.secretArn.split(":")[3];
            statements.push(
                allow("DecryptJwtSecret", ["kms:Decrypt"], [auth.secretKmsKeyArn], {
                    StringEquals: {
                        "kms:ViaService": `secretsmanager.${region}.amazonaws.com`,
                        "kms:EncryptionContext:SecretARN": auth.secretArn,
                    },
                }),
            );
        }
    }
    return statements;
}

export function connectAuthorizer(
    settings: Settings,
    auth: JwtAuthSettings,
    api: aws.apigatewayv2.Api,
    fn: RustFunction,
): ConnectAuthorizer {
    // API Gateway may invoke the `live` alias as an authorizer of this API only:
    // arn:aws:execute-api:{region}:{account}:{apiId}/authorizers/{authorizerId}. The id is not
    // known before the authorizer exists, and the authorizer must not exist before it may invoke.
    const permission = new aws.lambda.Permission("authorizer", {
        action: "lambda:InvokeFunction",
        function: fn.function.name,
        qualifier: fn.alias.name,
        principal: "apigateway.amazonaws.com",
        sourceArn: pulumi.interpolate`${api.executionArn}/authorizers/*`,
    });
    const authorizer = new aws.apigatewayv2.Authorizer(
        "authorizer",
        {
            apiId: api.id,
            name: `${settings.prefix}-jwt`,
            authorizerType: "REQUEST",
            // The alias, never the unqualified function: a rollback moves what runs.
            authorizerUri: fn.alias.invokeArn,
            // None by default: see the header.
            ...(auth.identitySources.length > 0 ? { identitySources: auth.identitySources } : {}),
        },
        // Pointed at the alias only once the alias may be invoked: no window of 500s.
        { dependsOn: [permission] },
    );
    return { authorizer, permission };
}
