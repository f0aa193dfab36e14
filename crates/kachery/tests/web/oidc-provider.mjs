// A real OpenID Connect provider for the web journey (panva's oidc-provider) on a free
// loopback port, with its development sign-in form: the browser types a login (the e-mail
// to sign in as) and any password, then approves the hub on a consent page. Every account
// has a verified e-mail equal to its login. Not for anything but tests.
//
// Inputs (environment): REDIRECT_URI (the hub's callback), CLIENT_ID, CLIENT_SECRET.
// Prints one JSON line {"issuer": "..."} once it listens; exits when its stdin closes, so
// it never outlives the test that started it.

import http from 'node:http';
import Provider from 'oidc-provider';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`oidc-provider.mjs needs the environment variable ${name}`);
  return value;
};

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: env('CLIENT_ID'),
    client_secret: env('CLIENT_SECRET'),
    redirect_uris: [env('REDIRECT_URI')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: { openid: ['sub'], email: ['email', 'email_verified'] },
  // The hub reads e-mail from the ID token, as Google sends it.
  conformIdTokenClaims: false,
  findAccount: async (_ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, email: id, email_verified: true }),
  }),
  pkce: { required: () => true },
  cookies: { keys: ['kachery-journey-test-only'] },
});
// Plain HTTP on loopback: no proxy, no TLS.
provider.proxy = false;

server.on('request', provider.callback());
console.log(JSON.stringify({ issuer }));
// The test reads only that first line and then closes the pipe; the provider's own
// notices (console.log/info) go to stderr so they never write to a closed stdout.
console.log = console.error;
console.info = console.error;

process.stdin.on('end', () => {
  server.close();
  process.exit(0);
});
process.stdin.resume();
