// The journal/snapshot contract on the embedded LMDB store.
import test from 'ava';
import { LmdbStore } from '../../adapters/lmdb/lmdb-store.js';
import { journalContract } from '../contract/journal-contract.js';
import { tempDir } from '../helpers/fixtures.js';

journalContract('lmdb', test, () => {
  const { dir, cleanup } = tempDir('arcnet-contract-');
  let current = new LmdbStore(dir);
  return Promise.resolve({
    store: current,
    reopen: async () => {
      await current.close();
      current = new LmdbStore(dir);
      return current;
    },
    close: async () => {
      await current.close();
      cleanup();
    },
  });
});
