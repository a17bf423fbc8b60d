// Backup engines against real PostgreSQL, MariaDB and Redis servers: dump known data, change
// the source, restore into an isolated NEW target, compare exactly; failures (wrong password,
// server down, empty/garbage artifacts) are clear and leak no password; a MySQL dump that
// switches database cannot touch another database; no password appears on a command line.

import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createReadStream, createWriteStream, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { Readable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PostgresEngine } from '../src/backup/engines/postgres.js';
import { DatabaseSwitchGuard, MysqlEngine } from '../src/backup/engines/mysql.js';
import { RedisEngine } from '../src/backup/engines/redis.js';
import type { SpawnObserver } from '../src/backup/engines/engine.js';
import { startMariaDb, startPostgres, startRedis, redisCli, type MariaDbServer, type PostgresServer, type RedisServer } from './helpers/databases.js';
import { freePort } from './helpers/ports.js';

let work: string;
let pg: PostgresServer;
let my: MariaDbServer;
let rd: RedisServer;
const spawned: { tool: string; argv: string[]; cmdline: string }[] = [];
const onSpawn: SpawnObserver = ({ tool, pid, argv }) => {
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    /* already exited */
  }
  spawned.push({ tool, argv, cmdline });
};

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'slipway-bengine-'));
  const timed = async <T extends { startMs: number }>(name: string, p: Promise<T>) => {
    const s = await p;
    process.stderr.write(`# ${name} started in ${s.startMs} ms\n`);
    return s;
  };
  [pg, my, rd] = await Promise.all([timed('postgres', startPostgres()), timed('mariadb', startMariaDb()), timed('redis', startRedis())]);
});

after(async () => {
  await Promise.all([pg?.stop(), my?.stop(), rd?.stop()]);
  await rm(work, { recursive: true, force: true });
});

async function dumpToFile(fn: (out: NodeJS.WritableStream) => Promise<{ toolVersion: string }>, name: string) {
  const file = join(work, name);
  const out = createWriteStream(file);
  try {
    const r = await fn(out);
    return { file, ...r };
  } finally {
    out.end();
    await finished(out).catch(() => undefined);
  }
}

function chunked(text: string, size: number): Readable {
  const buf = Buffer.from(text);
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += size) parts.push(buf.subarray(i, i + size));
  return Readable.from(parts);
}

function assertNoSecret(err: unknown, secret: string, re: RegExp) {
  assert.ok(err instanceof Error);
  assert.match(err.message, re);
  assert.ok(!err.message.includes(secret), `error leaks the password: ${err.message}`);
  return true;
}

function assertNoPasswordOnCommandLines(password: string) {
  assert.ok(spawned.length > 0);
  for (const s of spawned) {
    assert.ok(!s.argv.join(' ').includes(password), `${s.tool} argv has the password`);
    assert.ok(!s.cmdline.includes(password), `${s.tool} /proc cmdline has the password`);
  }
}

describe('postgres engine', () => {
  const engine = new PostgresEngine({ onSpawn });
  const SEED = `
    CREATE DATABASE app;
    \\c app
    CREATE TABLE users (id int PRIMARY KEY, name text NOT NULL, note text);
    INSERT INTO users VALUES (1, 'Zoë 🚀', NULL), (2, 'Łukasz', 'naïve café'), (3, 'plain', 'USE other_db; -- just data');
    CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users(id), total numeric(10,2));
    INSERT INTO orders VALUES (10, 1, 12.50), (11, 2, NULL);
  `;
  const SELECT = 'SELECT * FROM users ORDER BY id; SELECT * FROM orders ORDER BY id;';
  const EXPECTED = '1|Zoë 🚀|<NULL>\n2|Łukasz|naïve café\n3|plain|USE other_db; -- just data\n10|1|12.50\n11|2|<NULL>\n';

  test('dump, change, restore into a new database: exact contents; source untouched', async () => {
    await pg.query(SEED);
    assert.equal(await pg.query(SELECT, 'app'), EXPECTED);
    spawned.length = 0;
    const target = { host: pg.host, port: pg.port, user: pg.user, password: pg.password, database: 'app' };
    const { file, toolVersion } = await dumpToFile((out) => engine.dump(target, out), 'pg.dump');
    assert.match(toolVersion, /^pg_dump \(PostgreSQL\) 15/);
    assert.equal(readFileSync(file).subarray(0, 5).toString(), 'PGDMP');
    await pg.query("UPDATE users SET name = 'changed' WHERE id = 1; DELETE FROM orders WHERE id = 11; INSERT INTO users VALUES (4, 'new', NULL);", 'app');
    const changed = await pg.query(SELECT, 'app');
    await engine.restore(target, createReadStream(file), { database: 'app_restored' });
    assert.equal(await pg.query(SELECT, 'app_restored'), EXPECTED);
    assert.equal(await pg.query(SELECT, 'app'), changed);
    assert.notEqual(changed, EXPECTED);
    assertNoPasswordOnCommandLines(pg.password);

    await assert.rejects(engine.restore(target, createReadStream(file), { database: 'app' }), /refusing to restore into the source database "app"/);
    await assert.rejects(engine.restore(target, createReadStream(file), { database: 'app_restored' }), /already exists/);
    assert.equal(await pg.query(SELECT, 'app'), changed);
    // Explicit overwrite brings the source back to the dumped state.
    await engine.restore(target, createReadStream(file), { database: 'app', overwriteSource: true });
    assert.equal(await pg.query(SELECT, 'app'), EXPECTED);
  });

  test('wrong password: clear failure without the password', async () => {
    const bad = 'wrong-Pa55word-xyz';
    await assert.rejects(
      dumpToFile((out) => engine.dump({ host: pg.host, port: pg.port, user: pg.user, password: bad, database: 'app' }, out), 'pg-bad.dump'),
      (e) => assertNoSecret(e, bad, /pg_dump exited with code 1: .*password authentication failed/s),
    );
  });

  test('server down: clear failure', async () => {
    const port = await freePort();
    await assert.rejects(
      dumpToFile((out) => engine.dump({ host: '127.0.0.1', port, user: 'x', password: 'pw', database: 'app' }, out), 'pg-down.dump'),
      /pg_dump exited with code 1: .*(Connection refused|could not connect)/s,
    );
  });

  test('empty and garbage artifacts fail clearly and leave no database behind', async () => {
    const target = { host: pg.host, port: pg.port, user: pg.user, password: pg.password, database: 'app' };
    await assert.rejects(engine.restore(target, Readable.from([]), { database: 'pg_empty' }), /pg_restore: the backup artifact is empty/);
    await assert.rejects(engine.restore(target, chunked('this is not a dump\n'.repeat(50), 7), { database: 'pg_garbage' }), /pg_restore exited with code 1: .*(not appear to be a valid archive|input file)/s);
    assert.equal((await pg.query("SELECT count(*) FROM pg_database WHERE datname IN ('pg_empty','pg_garbage');")).trim(), '0');
  });
});

describe('mysql engine', () => {
  const engine = new MysqlEngine({ onSpawn });
  const SEED = `
    CREATE DATABASE app CHARACTER SET utf8mb4;
    USE app;
    CREATE TABLE users (id INT PRIMARY KEY, name VARCHAR(100) NOT NULL, note TEXT NULL) CHARACTER SET utf8mb4;
    INSERT INTO users VALUES (1, 'Zoë 🚀', NULL), (2, 'Łukasz', 'it''s "quoted" \\\\ back'), (3, 'plain', 'USE other_db; -- just data');
    CREATE TABLE orders (id INT PRIMARY KEY, user_id INT, total DECIMAL(10,2) NULL);
    INSERT INTO orders VALUES (10, 1, 12.50), (11, 2, NULL);
    CREATE TRIGGER orders_bi BEFORE INSERT ON orders FOR EACH ROW SET NEW.total = IFNULL(NEW.total, 0);
    CREATE DATABASE other_db;
    CREATE TABLE other_db.victim (id INT PRIMARY KEY, v VARCHAR(20));
    INSERT INTO other_db.victim VALUES (1, 'keep me'), (2, 'and me');
  `;
  const SELECT = 'SELECT * FROM users ORDER BY id; SELECT * FROM orders ORDER BY id;';
  const EXPECTED = '1\tZoë 🚀\tNULL\n2\tŁukasz\tit\'s "quoted" \\ back\n3\tplain\tUSE other_db; -- just data\n10\t1\t12.50\n11\t2\tNULL\n';
  const VICTIM = '1\tkeep me\n2\tand me\n';
  const target = () => ({ host: my.host, port: my.port, user: my.user, password: my.password, database: 'app' });

  test('dump, change, restore into a new database: exact contents; source untouched', async () => {
    await my.query(SEED);
    assert.equal(await my.query(SELECT, 'app'), EXPECTED);
    spawned.length = 0;
    const { file, toolVersion } = await dumpToFile((out) => engine.dump(target(), out), 'my.sql');
    assert.match(toolVersion, /mariadb-dump|mysqldump/i);
    const text = readFileSync(file, 'utf8');
    assert.doesNotMatch(text, /^\s*(USE|CREATE DATABASE)\b/im);
    assert.match(text, /TRIGGER orders_bi BEFORE INSERT/);
    await my.query("UPDATE users SET name = 'changed' WHERE id = 1; DELETE FROM orders WHERE id = 11; INSERT INTO users VALUES (4, 'new', NULL);", 'app');
    const changed = await my.query(SELECT, 'app');
    await engine.restore(target(), createReadStream(file, { highWaterMark: 64 }), { database: 'app_restored' });
    assert.equal(await my.query(SELECT, 'app_restored'), EXPECTED);
    assert.equal((await my.query("SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'app_restored';")).trim(), 'orders_bi');
    assert.equal(await my.query(SELECT, 'app'), changed);
    assert.equal(await my.query('SELECT * FROM victim ORDER BY id;', 'other_db'), VICTIM);
    assertNoPasswordOnCommandLines(my.password);

    await assert.rejects(engine.restore(target(), createReadStream(file), { database: 'app' }), /refusing to restore into the source database "app"/);
    await assert.rejects(engine.restore(target(), createReadStream(file), { database: 'app_restored' }), /already exists/);
    assert.equal(await my.query(SELECT, 'app'), changed);
  });

  test('a dump that switches database cannot touch another database', async () => {
    const attacks = [
      'USE other_db;\n',
      'use `other_db`;\n',
      'SELECT 1; USE other_db;\n',
      '/*!40000 USE other_db */;\n',
      '/*M!100100 use other_db*/;\n',
      '\\u other_db\n',
      '\\r other_db\n',
      'connect other_db;\n',
      'CREATE DATABASE IF NOT EXISTS other_db;\n',
      'CREATE /* hidden */ SCHEMA x;\n',
      'CREATE OR REPLACE DATABASE other_db;\n',
      'DROP DATABASE other_db;\n',
      "SET sql_mode='NO_BACKSLASH_ESCAPES';\n",
      "DELIMITER //\nSELECT 1 // USE other_db //\n",
    ];
    let n = 0;
    for (const attack of attacks) {
      const artifact = `-- crafted\nCREATE TABLE t1 (id INT);\nINSERT INTO t1 VALUES (1), (2);\nSELECT 'it''s; USE x' AS s;\n${attack}DELETE FROM victim;\nDROP TABLE IF EXISTS victim;\n`;
      const db = `crafted_${n++}`;
      await assert.rejects(engine.restore(target(), chunked(artifact, 3), { database: db }), /refusing to restore: line \d+/, attack);
      assert.equal(await my.query('SELECT * FROM victim ORDER BY id;', 'other_db'), VICTIM, attack);
      assert.equal((await my.query(`SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '${db}';`)).trim(), '0', attack);
    }
    // Data that merely looks like a statement inside strings and comments passes.
    const benign = "CREATE TABLE t (s TEXT);\nINSERT INTO t VALUES ('USE other_db;'), ('a\\'; USE x; \\'');\n# USE other_db;\n/* USE other_db; */\nINSERT INTO t VALUES (\"\\\\\"), ('`');\n";
    await engine.restore(target(), chunked(benign, 5), { database: 'benign' });
    assert.equal(await my.query('SELECT s FROM t;', 'benign'), "USE other_db;\na'; USE x; '\n\\\n`\n");
    assert.equal(await my.query('SELECT * FROM victim ORDER BY id;', 'other_db'), VICTIM);
  });

  test('guard refuses mariadb-dump --databases output before forwarding anything', async () => {
    const guard = new DatabaseSwitchGuard();
    const chunks: Buffer[] = [];
    guard.on('data', (c: Buffer) => chunks.push(c));
    const done = new Promise<Error | undefined>((resolve) => {
      guard.on('error', resolve);
      guard.on('end', () => resolve(undefined));
    });
    guard.end('/*M!999999\\- enable the sandbox mode */\nCREATE DATABASE /*!32312 IF NOT EXISTS*/ `app` ;\nUSE `app`;\n');
    const err = await done;
    assert.match(String(err), /line 2 contains CREATE DATABASE/);
    assert.equal(Buffer.concat(chunks).toString(), '');
  });

  test('wrong password: clear failure without the password', async () => {
    const bad = 'wrong-Pa55word-xyz';
    await assert.rejects(
      dumpToFile((out) => engine.dump({ ...target(), password: bad }, out), 'my-bad.sql'),
      (e) => assertNoSecret(e, bad, /mariadb-dump exited with code 2: .*Access denied/s),
    );
  });

  test('server down: clear failure', async () => {
    const port = await freePort();
    await assert.rejects(
      dumpToFile((out) => engine.dump({ host: '127.0.0.1', port, user: 'x', password: 'pw', database: 'app' }, out), 'my-down.sql'),
      /mariadb-dump exited with code 2: .*Can't connect/s,
    );
  });

  test('empty and garbage artifacts fail clearly and leave no database behind', async () => {
    await assert.rejects(engine.restore(target(), Readable.from([]), { database: 'my_empty' }), /mariadb restore: the backup artifact is empty/);
    await assert.rejects(engine.restore(target(), chunked('this is not a dump\n', 4), { database: 'my_garbage' }), /mariadb exited with code 1: .*SQL syntax/s);
    assert.equal((await my.query("SELECT count(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN ('my_empty','my_garbage');")).trim(), '0');
  });
});

describe('redis engine', () => {
  const engine = new RedisEngine({ onSpawn });
  async function snapshot(at: { port: number; password?: string }): Promise<string> {
    const c = (args: string[]) => redisCli(at.port, at.password, args);
    const keys = (await c(['KEYS', '*'])).trim().split('\n').sort();
    return [
      keys.join(','),
      await c(['GET', 'greeting']),
      await c(['GET', 'empty']),
      await c(['GET', 'missing']),
      await c(['HGETALL', 'user:1']),
      await c(['LRANGE', 'queue', '0', '-1']),
      (await c(['SMEMBERS', 'tags'])).trim().split('\n').sort().join(','),
      await c(['ZRANGE', 'scores', '0', '-1', 'WITHSCORES']),
    ].join('|');
  }
  const EXPECTED = 'empty,greeting,queue,scores,tags,user:1|héllo 🌍\n|\n|\n|name\nZoë\nnote\nnaïve\n|a\nb\nc\n|x,y,ζ|alice\n1.5\nbob\n2\n';

  test('dump, change, restore into a new isolated server: exact contents; source untouched', async () => {
    const s = rd.cli;
    await s(['SET', 'greeting', 'héllo 🌍']);
    await s(['SET', 'empty', '']);
    await s(['HSET', 'user:1', 'name', 'Zoë', 'note', 'naïve']);
    await s(['RPUSH', 'queue', 'a', 'b', 'c']);
    await s(['SADD', 'tags', 'x', 'y', 'ζ']);
    await s(['ZADD', 'scores', '1.5', 'alice', '2', 'bob']);
    const source = { port: rd.port, password: rd.password };
    assert.equal(await snapshot(source), EXPECTED);
    spawned.length = 0;
    const target = { host: rd.host, port: rd.port, password: rd.password };
    const { file, toolVersion } = await dumpToFile((out) => engine.dump(target, out), 'redis.rdb');
    assert.match(toolVersion, /^redis-cli 7/);
    assert.equal(readFileSync(file).subarray(0, 5).toString(), 'REDIS');
    await s(['SET', 'greeting', 'changed']);
    await s(['DEL', 'queue']);
    await s(['SET', 'added', '1']);
    const changed = await snapshot(source);
    const restorePw = 'restore-secret-pw';
    const restored = await engine.restore(target, createReadStream(file), { password: restorePw });
    try {
      assert.notEqual(restored.port, rd.port);
      assert.equal(await snapshot({ port: restored.port, password: restorePw }), EXPECTED);
      assert.equal(await snapshot(source), changed);
      assert.notEqual(changed, EXPECTED);
      // Isolated: writes to the restored server do not reach the source.
      await redisCli(restored.port, restorePw, ['SET', 'greeting', 'restored-only']);
      assert.equal(await snapshot(source), changed);
    } finally {
      await restored.stop();
    }
    await assert.rejects(redisCli(restored.port, restorePw, ['PING']));
    assertNoPasswordOnCommandLines(rd.password);
    assertNoPasswordOnCommandLines(restorePw);
  });

  test('wrong password: clear failure without the password', async () => {
    const bad = 'wrong-Pa55word-xyz';
    await assert.rejects(
      dumpToFile((out) => engine.dump({ host: rd.host, port: rd.port, password: bad }, out), 'redis-bad.rdb'),
      (e) => assertNoSecret(e, bad, /redis-cli (exited with code 1|produced an empty file).*(WRONGPASS|AUTH|invalid|NOAUTH)/is),
    );
  });

  test('server down: clear failure', async () => {
    const port = await freePort();
    await assert.rejects(
      dumpToFile((out) => engine.dump({ host: '127.0.0.1', port, password: 'pw' }, out), 'redis-down.rdb'),
      /redis-cli exited with code 1: .*(Connection refused|Could not connect)/is,
    );
  });

  test('empty and garbage artifacts fail clearly', async () => {
    const target = { host: rd.host, port: rd.port, password: rd.password };
    await assert.rejects(engine.restore(target, Readable.from([]), {}), /redis restore: the backup artifact is empty/);
    const garbage = join(work, 'garbage.rdb');
    await writeFile(garbage, 'this is not an rdb file\n'.repeat(20));
    await assert.rejects(engine.restore(target, createReadStream(garbage), {}), /redis-server exited with code 1 while loading the artifact: .*(Bad file format|Wrong signature|Short read|RDB)/is);
  });
});
