import { startEtcd } from '/work/main/dist/test/helpers/etcd.js';
import { Etcd3 } from 'etcd3';
const e = await startEtcd();
const c = new Etcd3({ hosts: e.endpoints });
const val = Buffer.alloc(1000, 97);
async function run(name, n, fn) {
  let next = 0; const t = performance.now();
  await Promise.all(Array.from({length: 64}, async () => { while (next < n) { const i = next++; await fn(i); } }));
  console.log(name, Math.round(n / ((performance.now()-t)/1000)), '/s');
}
await run('put', 5000, (i) => c.kv.put({ key: Buffer.from('/p/'+i), value: val }));
await run('txn create', 5000, (i) => c.kv.txn({ compare: [{ key: Buffer.from('/t/'+i), target: 'Create', result: 'Equal', create_revision: 0 }], success: [{ request_put: { key: Buffer.from('/t/'+i), value: val } }], failure: [] }));
const w = await c.watch().prefix('/w/').withPreviousKV().create(); let got = 0; w.on('put', () => got++);
await run('txn create + watch', 5000, (i) => c.kv.txn({ compare: [{ key: Buffer.from('/w/'+i), target: 'Create', result: 'Equal', create_revision: 0 }], success: [{ request_put: { key: Buffer.from('/w/'+i), value: val } }], failure: [] }));
await run('put again', 5000, (i) => c.kv.put({ key: Buffer.from('/p2/'+i), value: val }));
console.log('watched', got);
c.close(); await e.stop();
