/* Customer-service chat on the legacy client (ES5, no Promise/fetch/WebSocket). Both sides keep
   their transcript and an outbox of unsent messages in localStorage, so a reload loses nothing:
   the transcript is redrawn, the poller resumes from its saved cursor, and unsent messages are
   published again under the same client id, which the gateway stores only once. Every message is
   published with `receipt: true`: a bubble shows ✓ once the gateway stored it and ✓✓ once the
   other side's poller acknowledged it (its receipt arrives through our own poller). */
(function () {
  'use strict';

  var ROLES = {
    customer: { self: 'demo-customer', peer: 'demo-agent', title: 'Support chat (customer)', peerLabel: 'Agent' },
    agent: { self: 'demo-agent', peer: 'demo-customer', title: 'Support desk (agent)', peerLabel: 'Customer' }
  };
  var API_BASE = '/';
  var role = readRole();
  var me = ROLES[role];
  var storagePrefix = 'demo-chat:' + me.self + ':';

  var transcriptList = document.getElementById('transcript');
  var statusBadge = document.getElementById('status');
  var textInput = document.getElementById('text');

  var transcript = loadJson('transcript', []);
  var outbox = loadJson('outbox', []);
  // Receipts for messages whose publish answer has not come back yet (the receipt travels on
  // another connection, so it can overtake that answer, e.g. after a retried publish). By server id.
  var earlyReceipts = loadJson('early-receipts', {});
  var token = null;
  var poller = null;
  var publishing = false;

  function readRole() {
    var match = /[?&]role=([^&#]*)/.exec(window.location.search);
    var value = match ? decodeURIComponent(match[1]) : 'customer';
    return Object.prototype.hasOwnProperty.call(ROLES, value) ? value : 'customer';
  }

  // Storage can be missing or throw (private modes, sandboxed frames, full quota): degrade to memory.
  function loadJson(name, fallback) {
    try {
      var raw = window.localStorage.getItem(storagePrefix + name);
      return raw ? JSON.parse(raw) : fallback;
    } catch (ignored) {
      return fallback;
    }
  }

  function saveJson(name, value) {
    try {
      window.localStorage.setItem(storagePrefix + name, JSON.stringify(value));
    } catch (ignored) {}
  }

  function setText(element, text) {
    while (element.firstChild) element.removeChild(element.firstChild);
    element.appendChild(document.createTextNode(text));
  }

  function showStatus(state, text) {
    statusBadge.setAttribute('data-state', state);
    setText(statusBadge, text);
  }

  // ----- transcript -----

  function indexOfKey(key) {
    for (var index = 0; index < transcript.length; index++) {
      if (transcript[index].key === key) return index;
    }
    return -1;
  }

  function renderEntry(entry) {
    var item = document.createElement('li');
    item.className = 'message ' + (entry.mine ? 'mine' : 'theirs') + (entry.state ? ' ' + entry.state : '');
    item.setAttribute('data-key', entry.key);
    var who = document.createElement('span');
    who.className = 'who';
    setText(who, entry.mine ? 'You' : me.peerLabel);
    var text = document.createElement('span');
    text.className = 'text';
    setText(text, entry.text);
    item.appendChild(who);
    item.appendChild(text);
    if (entry.mine) {
      var state = document.createElement('span');
      state.className = 'state';
      setText(state, STATE_LABELS[entry.state] || 'sending…');
      state.setAttribute('title', entry.state === 'read' ? 'read' : entry.state === 'sent' ? 'sent' : '');
      item.appendChild(state);
    }
    return item;
  }

  var STATE_LABELS = { sent: '✓', read: '✓✓', failed: 'retrying…', refused: 'not allowed' };

  function redraw() {
    while (transcriptList.firstChild) transcriptList.removeChild(transcriptList.firstChild);
    for (var index = 0; index < transcript.length; index++) transcriptList.appendChild(renderEntry(transcript[index]));
    transcriptList.scrollTop = transcriptList.scrollHeight;
  }

  /** Adds an entry unless one with the same key is already shown: a message appears exactly once. */
  function addEntry(entry) {
    if (indexOfKey(entry.key) >= 0) return;
    transcript.push(entry);
    saveJson('transcript', transcript);
    transcriptList.appendChild(renderEntry(entry));
    transcriptList.scrollTop = transcriptList.scrollHeight;
  }

  function setEntryState(key, state, serverId) {
    var index = indexOfKey(key);
    if (index < 0 || transcript[index].state === state) return;
    transcript[index].state = state;
    if (serverId !== undefined) transcript[index].serverId = serverId;
    saveJson('transcript', transcript);
    transcriptList.replaceChild(renderEntry(transcript[index]), transcriptList.childNodes[index]);
  }

  // ----- receiving -----

  function receive(messages) {
    for (var index = 0; index < messages.length; index++) {
      var message = messages[index];
      var body = message.body && typeof message.body === 'object' ? message.body : { text: String(message.body) };
      // The sender's client id identifies the message across redeliveries, even if the poller's
      // own de-duplication state were lost.
      var key = 'in:' + message.from + ':' + (body.clientId || 'id-' + message.id);
      addEntry({ key: key, mine: false, text: String(body.text) });
    }
  }

  /** ✓✓ on the bubble whose publish the gateway answered with this id. */
  function receiveReceipts(receipts) {
    for (var index = 0; index < receipts.length; index++) {
      var id = receipts[index].id;
      var found = false;
      for (var entry = 0; entry < transcript.length; entry++) {
        if (transcript[entry].mine && transcript[entry].serverId === id) {
          setEntryState(transcript[entry].key, 'read');
          found = true;
        }
      }
      if (!found) earlyReceipts[id] = true;
    }
    saveJson('early-receipts', earlyReceipts);
  }

  function onPollerStatus(status) {
    if (status.type === 'connected' || status.type === 'messages') {
      showStatus('connected', 'connected');
    } else if (status.type === 'retrying') {
      showStatus('retrying', 'reconnecting (attempt ' + status.attempt + ')');
    } else if (status.type === 'stopped' && status.error) {
      if (status.error.status === 401) {
        // Expired demo token: fetch a fresh one and carry on from the same cursor.
        showStatus('retrying', 'renewing token');
        token = null;
        fetchToken(function () {
          poller.start();
        });
      } else {
        showStatus('stopped', 'stopped: ' + status.error.code);
      }
    }
  }

  // ----- sending -----

  function send(text) {
    var clientId = me.self + '-' + LongPoll.newClientId();
    addEntry({ key: 'out:' + clientId, mine: true, text: text, state: 'pending' });
    outbox.push({ clientId: clientId, text: text });
    saveJson('outbox', outbox);
    publishNext();
  }

  /** One message at a time, oldest first, so the other side receives them in the order typed. */
  function publishNext() {
    if (publishing || !token || outbox.length === 0) return;
    var item = outbox[0];
    publishing = true;
    LongPoll.publish(
      {
        url: API_BASE,
        token: function () { return token; },
        to: me.peer,
        id: item.clientId,
        body: { text: item.text, clientId: item.clientId },
        receipt: true,
        retries: 6
      },
      function (error, result) {
        publishing = false;
        if (error && error.status === 403) {
          // The token may not write to this recipient (its `pub` claim): final, so retrying would
          // only block the messages queued behind it.
          outbox.shift();
          saveJson('outbox', outbox);
          setEntryState('out:' + item.clientId, 'refused');
          publishNext();
          return;
        }
        if (error) {
          setEntryState('out:' + item.clientId, 'failed');
          if (error.status === 401) {
            token = null;
            fetchToken(publishNext);
          } else {
            setTimeout(publishNext, 3000);
          }
          return;
        }
        outbox.shift();
        saveJson('outbox', outbox);
        var read = earlyReceipts[result.id] === true;
        if (read) {
          delete earlyReceipts[result.id];
          saveJson('early-receipts', earlyReceipts);
        }
        setEntryState('out:' + item.clientId, read ? 'read' : 'sent', result.id);
        publishNext();
      }
    );
  }

  // ----- start-up -----

  function fetchToken(then) {
    var xhr = new XMLHttpRequest();
    xhr.open('GET', 'token?user=' + encodeURIComponent(me.self) + '&_=' + new Date().getTime(), true);
    xhr.onreadystatechange = function () {
      if (xhr.readyState !== 4) return;
      var parsed = null;
      try {
        parsed = xhr.status === 200 ? JSON.parse(xhr.responseText) : null;
      } catch (ignored) {}
      if (parsed && parsed.token) {
        token = parsed.token;
        then();
      } else {
        showStatus('retrying', 'waiting for the demo server');
        setTimeout(function () { fetchToken(then); }, 2000);
      }
    };
    xhr.send(null);
  }

  function forgetConversation() {
    if (poller) poller.stop();
    try {
      var storage = window.localStorage;
      storage.removeItem(storagePrefix + 'transcript');
      storage.removeItem(storagePrefix + 'outbox');
      storage.removeItem(storagePrefix + 'cursor');
      storage.removeItem(storagePrefix + 'early-receipts');
    } catch (ignored) {}
    window.location.reload();
  }

  document.title = me.title;
  setText(document.getElementById('title'), me.title);
  document.getElementById('link-' + role).className = 'current';
  redraw();

  document.getElementById('composer').onsubmit = function () {
    var text = textInput.value.replace(/^\s+|\s+$/g, '');
    if (text) send(text);
    textInput.value = '';
    textInput.focus();
    return false;
  };
  document.getElementById('reset').onclick = forgetConversation;

  fetchToken(function () {
    poller = LongPoll.createLongPoller({
      url: API_BASE,
      token: function () { return token; },
      storageKey: storagePrefix + 'cursor',
      onMessages: receive,
      onReceipts: receiveReceipts,
      onStatus: onPollerStatus
    });
    poller.start();
    // A long poll is only answered when a message arrives (or `wait` passes): the page is online
    // from the start unless the poller reports otherwise.
    showStatus('connected', 'online');
    publishNext();
  });
})();
