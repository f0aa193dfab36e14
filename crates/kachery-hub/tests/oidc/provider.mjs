// A real OpenID Connect provider on loopback for the hub's sign-in tests
// (oauth2-mock-server). Prints one JSON line {"issuer": "..."} once it listens, and exits
// when its stdin closes, so it never outlives the test that started it.
//
// Its /authorize redirects straight back with a code. Which account "signs in" is picked by
// the test: a `test_claims` query parameter on the authorize URL (JSON, e.g.
// {"sub":"alice","email":"alice@example.org","email_verified":true}) becomes the claims
// of the tokens issued for that code.

import { OAuth2Server } from 'oauth2-mock-server';

const server = new OAuth2Server();
await server.issuer.keys.generate('RS256');
await server.start(0, '127.0.0.1');
server.issuer.url = `http://127.0.0.1:${server.address().port}`;

const claimsByCode = new Map();

server.service.on('beforeAuthorizeRedirect', (redirect, req) => {
  const requested = new URL(req.url, server.issuer.url).searchParams.get('test_claims');
  const code = redirect.url.searchParams.get('code');
  if (requested && code) {
    claimsByCode.set(code, JSON.parse(requested));
  }
});

server.service.on('beforeTokenSigning', (token, req) => {
  const claims = claimsByCode.get(req.body?.code);
  if (claims) {
    Object.assign(token.payload, claims);
  }
});

console.log(JSON.stringify({ issuer: server.issuer.url }));

process.stdin.on('end', async () => {
  await server.stop();
  process.exit(0);
});
process.stdin.resume();
