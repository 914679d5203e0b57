/**
 * Observability: the node:diagnostics_channel channels (trews:connect, trews:accept,
 * trews:close, trews:error) over real sockets, and the NODE_DEBUG=trews trace of a child process.
 */
import diagnosticsChannel from 'node:diagnostics_channel';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Client, ConnectError, Connection, Datagram, HookError, ListenError, Server, diagnostics } from '../src/index.js';
import type { AcceptDiagnostic, CloseDiagnostic, ConnectDiagnostic, ErrorDiagnostic } from '../src/index.js';
import { deferred, freePort, onCleanup, portOf, testEngine } from './helpers.js';
import { ROOT } from './examples/helpers.js';

class Echo extends Connection {
  override readDelimiter = '\n';
  override onRead(line: Buffer) {
    this.write(Buffer.concat([line, Buffer.from('\n')]));
  }
}

type Seen = { name: string; message: ConnectDiagnostic | AcceptDiagnostic | CloseDiagnostic | ErrorDiagnostic };

/** Subscribe to every trews channel for this test, keeping the messages about `engine`'s channels. */
function record(engine: unknown): Seen[] {
  const seen: Seen[] = [];
  for (const name of ['trews:connect', 'trews:accept', 'trews:close', 'trews:error']) {
    const listener = (message: unknown) => {
      const m = message as Seen['message'];
      if (m.channel.engine === engine) seen.push({ name, message: m });
    };
    diagnosticsChannel.subscribe(name, listener);
    onCleanup(() => diagnosticsChannel.unsubscribe(name, listener));
  }
  return seen;
}

describe('diagnostics_channel', () => {
  it('the exported channels are the named ones', () => {
    expect(diagnostics.connect).toBe(diagnosticsChannel.channel('trews:connect'));
    expect(diagnostics.accept).toBe(diagnosticsChannel.channel('trews:accept'));
    expect(diagnostics.close).toBe(diagnosticsChannel.channel('trews:close'));
    expect(diagnostics.error).toBe(diagnosticsChannel.channel('trews:error'));
  });

  it('an echo over TCP: accept, connect, then close of both with reason (local / peer) and exact byte counts; the server closes last', async () => {
    const engine = testEngine();
    const seen = record(engine);
    const server = new Server(Echo, { engine });
    await server.listen(['127.0.0.1', 0]);
    const port = portOf(server.localAddress);
    const connectionClosed = deferred();
    server.on('accept', (c) => c.once('close', () => connectionClosed.resolve()));
    const client = new Client({ engine, readDelimiter: '\n', encoding: 'utf8' });
    await client.connect(['127.0.0.1', port]);
    const reply = deferred<string>();
    client.once('read', reply.resolve);
    client.write('hello\n');
    expect(await reply.promise).toBe('hello');
    await client.close();
    await connectionClosed.promise;
    await server.close();

    const [connection] = seen.filter((s) => s.name === 'trews:accept').map((s) => s.message.channel);
    expect(connection).toBeInstanceOf(Echo);
    expect(seen.map((s) => `${s.name} ${s.message.channel === client ? 'client' : s.message.channel === server ? 'server' : 'connection'}`).sort()).toEqual(
      ['trews:accept connection', 'trews:close client', 'trews:close connection', 'trews:close server', 'trews:connect client'].sort(),
    );
    expect(seen.at(-1)!.name).toBe('trews:close');
    expect(seen.at(-1)!.message.channel).toBe(server);

    const connect = seen.find((s) => s.name === 'trews:connect')!.message as ConnectDiagnostic;
    expect(connect.remoteAddress).toEqual({ address: '127.0.0.1', port, family: 'IPv4' });
    expect(connect.localAddress).toEqual(client.localAddress);
    const accept = seen.find((s) => s.name === 'trews:accept')!.message as AcceptDiagnostic;
    expect(accept.server).toBe(server);
    expect(accept.remoteAddress).toEqual(client.localAddress);
    expect(accept.localAddress).toEqual({ address: '127.0.0.1', port, family: 'IPv4' });

    const closeOf = (channel: unknown) => seen.find((s) => s.name === 'trews:close' && s.message.channel === channel)!.message as CloseDiagnostic;
    expect(closeOf(client)).toMatchObject({ reason: 'local', error: null, bytesRead: 6, bytesWritten: 6, forced: false });
    expect(closeOf(connection)).toMatchObject({ reason: 'peer', error: null, bytesRead: 6, bytesWritten: 6, forced: false });
    expect(closeOf(server)).toMatchObject({ reason: 'local', error: null });
    expect(seen.some((s) => s.name === 'trews:error')).toBe(false);
  });

  it('a refused connect: trews:error (onConnectError) with the error the promise rejects with, then trews:close with reason error and that error', async () => {
    const engine = testEngine();
    const seen = record(engine);
    const client = new Client({ engine });
    const err = await client.connect(['127.0.0.1', await freePort()]).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ConnectError);
    await client.whenClosed();
    expect(seen.map((s) => s.name)).toEqual(['trews:error', 'trews:close']);
    expect(seen[0]!.message).toEqual({ channel: client, hook: 'onConnectError', error: err });
    expect(seen[1]!.message).toMatchObject({ channel: client, reason: 'error', error: err, bytesRead: 0, bytesWritten: 0 });
  });

  it('a hook that throws: trews:error names onError with the HookError; a failed listen: onListenError, then the server closes with reason error', async () => {
    const engine = testEngine();
    const seen = record(engine);
    class Throws extends Connection {
      override onConnect() {
        throw new Error('boom');
      }
    }
    const server = new Server(Throws, { engine });
    await server.listen(['127.0.0.1', 0]);
    const client = new Client({ engine });
    await client.connect(server.localAddress!);
    await client.whenClosed();
    const hookError = seen.find((s) => s.name === 'trews:error')!.message as ErrorDiagnostic;
    expect(hookError.hook).toBe('onError');
    expect(hookError.error).toBeInstanceOf(HookError);
    expect((hookError.error as HookError).hook).toBe('onConnect');
    const connection = hookError.channel;
    expect(seen.find((s) => s.name === 'trews:close' && s.message.channel === connection)!.message).toMatchObject({ reason: 'error', error: hookError.error });

    const second = new Server(Echo, { engine });
    const listenErr = await second.listen(server.localAddress!).catch((e: unknown) => e);
    expect(listenErr).toBeInstanceOf(ListenError);
    await second.whenClosed();
    expect(seen.find((s) => s.name === 'trews:error' && s.message.channel === second)!.message).toMatchObject({ hook: 'onListenError', error: listenErr });
    expect(seen.find((s) => s.name === 'trews:close' && s.message.channel === second)!.message).toMatchObject({ reason: 'error', error: listenErr });
  });

  it('a datagram channel publishes an oversized send as trews:error (onWriteError), and its close (reason local: the channel stayed open)', async () => {
    const engine = testEngine();
    const seen = record(engine);
    const udp = new Datagram({ engine });
    await udp.listen(['127.0.0.1', 0]);
    const failed = deferred<Error>();
    udp.onWriteError = (err) => failed.resolve(err);
    udp.write(Buffer.alloc(70_000), ['127.0.0.1', portOf(udp.localAddress)]);
    const err = await failed.promise;
    await udp.close();
    expect(seen.map((s) => s.name)).toEqual(['trews:error', 'trews:close']);
    expect(seen[0]!.message).toEqual({ channel: udp, hook: 'onWriteError', error: err });
    expect(seen[1]!.message).toMatchObject({ channel: udp, reason: 'local', error: null }); // one datagram failed; the channel stayed open
  });
});

describe('NODE_DEBUG=trews', () => {
  function runFixture(env: Record<string, string>): Promise<{ stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'test/fixtures/debug-trace.ts')], {
        cwd: ROOT,
        env: { ...process.env, NODE_OPTIONS: '', NODE_DEBUG: '', ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      onCleanup(() => child.kill('SIGKILL'));
      child.on('close', (code) => {
        clearTimeout(timer);
        if (code === 0) resolve({ stdout, stderr });
        else reject(new Error(`the fixture exited with ${code}: ${stderr}`));
      });
    });
  }

  it('traces connect, accept, close (reason and byte counts) and errors to stderr; nothing without it', async () => {
    const traced = await runFixture({ NODE_DEBUG: 'trews' });
    const port = traced.stdout.trim();
    const lines = traced.stderr.split('\n').filter((line) => line.startsWith('TREWS '));
    const has = (pattern: RegExp) => expect(lines.some((line) => pattern.test(line)), `no line matches ${pattern}:\n${lines.join('\n')}`).toBe(true);
    has(new RegExp(`Client#\\d+\\(127\\.0\\.0\\.1:${port}\\): connected from 127\\.0\\.0\\.1:\\d+$`));
    has(/Echo#\d+\(127\.0\.0\.1:\d+\): accepted by Server#\d+\(127\.0\.0\.1:\d+\)$/);
    has(new RegExp(`Client#\\d+\\(127\\.0\\.0\\.1:${port}\\): closed \\(local; read 6 B, wrote 6 B\\)$`));
    has(/Echo#\d+\(127\.0\.0\.1:\d+\): closed \(peer; read 6 B, wrote 6 B\)$/);
    has(/Server#\d+\(127\.0\.0\.1:\d+\): closed \(local; read 0 B, wrote 0 B\)$/);
    has(new RegExp(`Client#\\d+\\(127\\.0\\.0\\.1:${port}\\): onConnectError\\(ConnectError: connect to 127\\.0\\.0\\.1:${port} failed: ECONNREFUSED\\)$`));
    has(/Client#\d+\([^)]*\): closed \(error: ConnectError: connect to .* failed: ECONNREFUSED; read 0 B, wrote 0 B\)$/);

    const quiet = await runFixture({});
    expect(quiet.stderr).not.toContain('TREWS');
  });
});
