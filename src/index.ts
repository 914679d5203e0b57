/**
 * Pants-style callback channels: subclass `Client`, `Connection` or `Datagram`, override its
 * `on*` hooks, set `readDelimiter`, and receive whole messages over TCP, TLS, Unix sockets or
 * UDP. Serve connections with `Server`; every channel lives in an `Engine`.
 *
 * @module trews
 */
export { Engine, Timer, type EngineOptions, type EngineEvents } from './engine.js';
export { Channel, type ChannelOptions, type ChannelEvents } from './channel.js';
export { Stream, type StreamOptions, type StreamEvents, type StreamEventsOf, type FrameOf, type ConnectOptions, type CloseOptions, type WriteFileOptions, type ReconnectOptions } from './stream.js';
export { StreamServer, type StreamServerOptions, type StreamServerEvents, type ListenOptions, type StreamClass, type SlowReaders } from './stream-server.js';
export { Server } from './server.js';
export { Connection } from './connection.js';
export { Client } from './client.js';
export { FrameIterator, type FramesOptions } from './frames.js';
export { type TLSClientOptions, type TLSServerOptions } from './tls.js';
export { Struct, type StructValue, type StructValues, type StructInput } from './struct.js';
export { ReadBuffer, compileDelimiter, type Delimiter, type FrameArgs, type CompiledDelimiter } from './framing.js';
export {
  TrewsError,
  ConnectError,
  ListenError,
  ReadError,
  TruncatedFrameError,
  WriteError,
  OverflowError,
  TLSError,
  HookError,
  ClosedError,
  StateError,
  TimeoutError,
  UnsupportedError,
  AbortError,
  systemCodeOf,
} from './errors.js';
export { type LinkOptions } from './memory.js';
export { parseAddress, formatAddress, type Address, type AddressInput, type InetAddress, type Family, type Endpoint } from './address.js';
export { Datagram, MAX_DATAGRAM_IPV4, MAX_DATAGRAM_IPV6, type DatagramOptions, type DatagramListenOptions, type DatagramEvents, type DatagramEventsOf, type DatagramAddressInput, type DatagramLookup, type Destination } from './datagram.js';
export { Packets, PacketConnection, PacketClient, framePacket, PACKET_HEADER, DEFAULT_MAX_PACKET_SIZE, MAX_PACKET_SIZE, type PacketOptions, type PacketEvents, type PacketChannel, type PacketMembers, type TypedEvents } from './packet.js';
export { jsonCodec, createJsonCodec, msgpackCodec, CodecError, type Codec, type JsonCodecOptions, type MessagePackLike } from './codec.js';
export { Messages, MessageConnection, MessageClient, RemoteError, LimitError, MAX_REQUEST_ID, DEFAULT_MAX_IN_FLIGHT, type FailureForm, type MessageOptions, type MessageEvents, type MessageChannel, type MessageMembers, type MessageKind, type SentMessage, type CloseReport, type CloseMode, type MessageCloseOptions, type RequestOptions } from './message.js';
export { diagnostics, type CloseReason, type ConnectDiagnostic, type AcceptDiagnostic, type CloseDiagnostic, type ErrorDiagnostic } from './diagnostics.js';
export { Registry, RegistryConnection, RegistryClient, PacketRegistry, HandshakeError, MAX_PACKET_ID, type PacketRegistryOptions, type PacketHandler, type PacketType, type RegistryOptions, type RegistryCloseOptions, type RegistryEvents, type RegistryChannel, type RegistryMembers } from './registry.js';
