/** The Socket.IO chat's page: socket.io-client (served next to it) and a few lines of JavaScript. */
export const SOCKETIO_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>trews chat (Socket.IO)</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; max-width: 48rem; margin: 2rem auto; padding: 0 1rem; }
  #log { border: 1px solid #ccc; height: 60vh; overflow-y: auto; padding: .5rem; white-space: pre-wrap; font-family: ui-monospace, monospace; }
  form { display: flex; gap: .5rem; margin-top: .5rem; }
  #line { flex: 1; font: inherit; padding: .3rem; }
  #status { color: #666; }
</style>
<script src="/socket.io.min.js"></script>
</head>
<body>
<h1>trews chat <small id="status">connecting…</small></h1>
<div id="log" aria-live="polite"></div>
<form id="form"><input id="line" autocomplete="off" autofocus placeholder="your nickname, then messages or /help"><button>Send</button></form>
<script>
  const log = document.getElementById('log');
  const status = document.getElementById('status');
  const input = document.getElementById('line');
  const socket = io();
  function show(line) {
    const div = document.createElement('div');
    div.className = 'line';
    div.textContent = line;
    log.append(div);
    log.scrollTop = log.scrollHeight;
  }
  socket.on('connect', () => (status.textContent = 'connected (' + socket.io.engine.transport.name + ')'));
  socket.io.engine.on('upgrade', () => (status.textContent = 'connected (websocket)'));
  socket.on('disconnect', (reason) => (status.textContent = 'disconnected: ' + reason));
  socket.on('line', show);
  document.getElementById('form').addEventListener('submit', (e) => {
    e.preventDefault();
    if (input.value === '') return;
    socket.emit('line', input.value);
    input.value = '';
  });
</script>
</body>
</html>
`;
