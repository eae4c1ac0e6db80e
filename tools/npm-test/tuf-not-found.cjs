// `npm audit signatures` first asks Sigstore's TUF repository
// (tuf-repo-cdn.sigstore.dev) for a registry's keys, and falls back to the
// registry's own `/-/npm/v1/keys` when the repository answers that it has
// no such target (TUF_FIND_TARGET_ERROR), as it does online for every
// registry but npm's. This machine cannot reach the repository, so this
// preload (NODE_OPTIONS=--require …) gives that same "not found" answer;
// everything else, the keys' fetch and npm's check of every signature,
// is npm's own code.
const Module = require('node:module');
const load = Module._load;
Module._load = function (request, ...rest) {
  const loaded = load.call(this, request, ...rest);
  if (request !== '@sigstore/tuf') return loaded;
  const notFound = async () => {
    const e = new Error('the TUF repository has no keys for this registry');
    e.code = 'TUF_FIND_TARGET_ERROR';
    throw e;
  };
  return { ...loaded, initTUF: async () => ({ getTarget: notFound }) };
};
