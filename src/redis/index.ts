/**
 * trews/redis: scale a trews server out to many processes and hosts. A RedisBus (on ioredis,
 * an optional peer dependency) carries `Server.broadcast()`, `WebSocketServer.broadcast()` and
 * Socket.IO `to(room).emit()` to the servers attached under the same name in other processes.
 *
 * @module trews/redis
 */
export { RedisBus, type RedisBusOptions, type RedisBusEvents, type Attachable } from './bus.js';
