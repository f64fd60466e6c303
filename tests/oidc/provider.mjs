// A real OpenID provider for Formulary's sign-in tests: the certified `oidc-provider` package
// (https://github.com/panva/node-oidc-provider), with one confidential client that must use
// PKCE, a fresh RSA signing key, and accounts read from a JSON file at every sign-in, so a test
// can change a person's claims (take a role away) between two sign-ins. Its development
// interactions ask for any login (the account id) and password, then for consent.
//
// Environment:
//   PORT            where to listen on 127.0.0.1
//   ISSUER          the issuer URL (http://127.0.0.1:PORT)
//   CLIENT_ID, CLIENT_SECRET, REDIRECT_URI   the client Formulary is registered as
//   ACCOUNTS_FILE   JSON: { "<account id (the subject)>": { <claims> } }
//   POST_LOGOUT_REDIRECT_URI   where the provider may send people back after signing them out
//                   (RP-initiated logout; its end_session_endpoint asks "Do you want to sign-out").
//   NO_LOGOUT=1     a provider without RP-initiated logout (no end_session_endpoint)
//
// Prints "oidc-provider listening on <ISSUER>" when ready. Run by crates/formulary/tests/cli/oidc.rs.

import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const required = (name) => {
  const value = process.env[name];
  if (!value) {
    console.error(`provider.mjs: set ${name}`);
    process.exit(2);
  }
  return value;
};

const port = Number(required('PORT'));
const issuer = required('ISSUER');
const accountsFile = required('ACCOUNTS_FILE');

const signingKey = {
  ...generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' }),
  kid: `test-${randomBytes(4).toString('hex')}`,
  use: 'sig',
  alg: 'RS256',
};

/** The accounts as the file says now. */
const accounts = () => JSON.parse(readFileSync(accountsFile, 'utf8'));

const configuration = {
  clients: [{
    client_id: required('CLIENT_ID'),
    client_secret: required('CLIENT_SECRET'),
    redirect_uris: [required('REDIRECT_URI')],
    post_logout_redirect_uris: process.env.POST_LOGOUT_REDIRECT_URI ? [process.env.POST_LOGOUT_REDIRECT_URI] : [],
    response_types: ['code'],
    grant_types: ['authorization_code'],
    token_endpoint_auth_method: 'client_secret_basic',
  }],
  // Every authorisation request must carry a PKCE S256 challenge.
  pkce: { required: () => true },
  scopes: ['openid', 'profile', 'email', 'nationalrbacaccess', 'associatedorgs', 'selectedrole'],
  // Claims by scope, shaped like NHS CIS2's (nhsid_nrbac_roles, nhsid_user_orgs,
  // selected_roleid) and Microsoft Entra ID's (roles).
  claims: {
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username', 'roles'],
    email: ['email', 'email_verified'],
    nationalrbacaccess: ['nhsid_nrbac_roles', 'nhsid_useruid'],
    associatedorgs: ['nhsid_user_orgs'],
    selectedrole: ['selected_roleid'],
  },
  async findAccount(ctx, id) {
    const claims = accounts()[id];
    if (!claims) {
      return undefined;
    }
    return {
      accountId: id,
      // Read again for every token and UserInfo answer: the file may have changed.
      async claims() {
        return { ...(accounts()[id] || {}), sub: id };
      },
    };
  },
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(16).toString('hex')] },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: process.env.NO_LOGOUT !== '1' },
  },
};

const provider = new Provider(issuer, configuration);
provider.on('server_error', (ctx, error) => console.error('oidc-provider server error:', error));
createServer(provider.callback()).listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});
