// An OpenID provider on 127.0.0.1 for tests/testsuite/identity.rs:
// oauth2-mock-server (discovery, JWKS, the authorization code flow with
// PKCE and nonce) plus a few control routes the tests drive it with.
//
//   node provider.mjs PORT      prints "listening {issuer}" when ready
//
// POST /control/user {claims}   the claims of the next sign-ins' tokens
// POST /control/mint {claims, expiresIn?, kid?}  a signed JWT (a CI token)
// POST /control/rotate          a new signing key; answers {kid}
import { OAuth2Server } from 'oauth2-mock-server';

const port = Number(process.argv[2]);
const server = new OAuth2Server();
server.issuer.url = `http://127.0.0.1:${port}`;
const first = await server.issuer.keys.generate('RS256');
let user = {};
let signWith = first.kid;

server.service.on('beforeTokenSigning', (token, req) => {
  if (req.body && req.body.grant_type === 'authorization_code') Object.assign(token.payload, user);
});

const app = server.service.requestHandler;
app.post('/control/user', (req, res) => { user = req.body.claims || {}; res.json({ ok: true }); });
app.post('/control/mint', async (req, res) => {
  const { claims = {}, expiresIn = 300, kid } = req.body;
  const jwt = await server.issuer.buildToken({
    kid: kid || signWith,
    expiresIn,
    scopesOrTransform: (_header, payload) => Object.assign(payload, claims),
  });
  res.json({ jwt });
});
app.post('/control/rotate', async (_req, res) => {
  const key = await server.issuer.keys.generate('RS256');
  signWith = key.kid;
  res.json({ kid: key.kid });
});

await server.start(port, '127.0.0.1');
console.log(`listening ${server.issuer.url}`);
