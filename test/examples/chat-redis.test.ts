/**
 * The chat example as two processes on two ports sharing one real redis-server (REDIS_URL):
 * a user of each sees the other's lines, over TCP and the WebSocket page's endpoint alike.
 */
import path from 'node:path';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { freePort, onCleanup, tempDir, waitFor } from '../helpers.js';
import { NO_REDIS, RedisServer, hasRedisServer } from '../redis-server.js';
import { joinChat as join, spawnWithTsx, untilFirstLine, type SpawnedExample } from './helpers.js';

if (!hasRedisServer) console.warn(NO_REDIS);

const GREETING = 'Welcome to trews chat! What is your nickname?\n';

/** `npm start` with REDIS_URL, on ports of its own; resolves with its ports once it prints its listening line. */
async function chatProcess(redisUrl: string): Promise<SpawnedExample & { port: number; webPort: number }> {
  const port = await freePort();
  const webPort = await freePort();
  const chat = spawnWithTsx('examples/chat/main.ts', { PORT: String(port), WEB_PORT: String(webPort), CHAT_SOCKET: path.join(tempDir(), 'chat.sock'), REDIS_URL: redisUrl });
  await untilFirstLine(chat, 'the chat to listen', 15_000);
  expect(chat.stdout()).toMatch(new RegExp(`^trews chat listening on tcp port ${port} .* — sharing the room through ${redisUrl}\\n$`));
  return Object.assign(chat, { port, webPort });
}


describe.skipIf(!hasRedisServer)('the chat on two processes sharing Redis (REDIS_URL)', () => {
  it('users of each process see each other\'s lines; a shutdown notice stays in its process', async () => {
    const redis = await RedisServer.start();
    onCleanup(() => redis.stop());
    const [one, two] = await Promise.all([chatProcess(redis.url), chatProcess(redis.url)]);

    const alice = await join(one.port, 'alice');
    const bob = await join(two.port, 'bob');
    await alice.untilText('* bob has joined\n');

    // carol uses the web page's WebSocket endpoint of process two.
    const carol = new WebSocket(`ws://127.0.0.1:${two.webPort}/chat`);
    onCleanup(() => carol.terminate());
    let seen = '';
    const carolSees = (text: string) =>
      waitFor(() => seen.includes(text), (wake) => carol.once('message', wake), JSON.stringify(text), 10_000, () => seen);
    carol.on('message', (data) => (seen += data.toString()));
    await carolSees(GREETING);
    carol.send('carol\n');
    await carolSees('* hello carol');
    await alice.untilText('* carol has joined\n');

    await alice.write('hello from process one\n');
    await bob.untilText('<alice> hello from process one\n');
    await carolSees('<alice> hello from process one\n');
    await bob.write('and back from process two\n');
    await alice.untilText('<bob> and back from process two\n');
    carol.send('me too\n');
    await alice.untilText('<carol> me too\n');

    // Nicknames and /who are per process.
    await bob.write('/who\n');
    await bob.untilText('* here: bob, carol\n');

    two.child.kill('SIGINT');
    await bob.untilText('* the server is shutting down\n');
    await alice.untilText('* bob has left\n');
    await alice.untilText('* carol has left\n');
    expect(await two.exited).toEqual({ code: 0, signal: null });
    await alice.write('still here\n');
    await alice.write('/who\n');
    await alice.untilText('* here: alice\n');
    expect(alice.text).not.toContain('shutting down');
    one.child.kill('SIGINT');
    expect(await one.exited).toEqual({ code: 0, signal: null });
    expect(one.stderr() + two.stderr()).toBe('');
  });
});
