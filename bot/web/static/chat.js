// chatmod demo chat. Every piece of user text is put in the DOM with textContent, never innerHTML.
"use strict";
(function () {
  const $ = (id) => document.getElementById(id);
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  };
  const state = { me: null, channel: "general", channels: [], history: {}, ws: null, labels: [] };

  function connect(name) {
    const proto = location.protocol === "https:" ? "wss" : "ws";
    const ws = new WebSocket(`${proto}://${location.host}/ws?name=${encodeURIComponent(name)}`);
    state.ws = ws;
    ws.onmessage = (ev) => handle(JSON.parse(ev.data));
    ws.onclose = () => notice({ message: "Disconnected. Reload to reconnect.", kind: "error" });
  }
  const send = (obj) => state.ws && state.ws.readyState === 1 && state.ws.send(JSON.stringify(obj));

  function handle(m) {
    switch (m.type) {
      case "hello":
        state.me = m.me; state.channels = m.channels; state.history = m.history;
        $("dashboard-link").href = m.dashboard;
        $("me").textContent = `you are ${m.me.name}`;
        $("model-version").textContent = m.model_version;
        renderChannels(); renderRoom();
        document.body.dataset.ready = "1";
        break;
      case "history":
        state.history = m.history; state.me = m.me; renderRoom();
        break;
      case "message": upsert(m.message); break;
      case "remove": removeMsg(m.id); break;
      case "members": renderMembers(m.members); break;
      case "notice": notice(m); break;
      case "error": notice({ message: m.message, kind: "error" }); break;
      case "alert": notice({ message: "Admin alert: " + m.message, kind: "error" }); break;
      case "appeal_submitted":
        notice({ message: `Appeal submitted on case #${m.case_id}.`, kind: "appeal" });
        document.querySelectorAll(`[data-appeal-case="${m.case_id}"]`).forEach((b) => { b.disabled = true; b.textContent = "Appealed"; });
        break;
      case "modstate": renderMod(m); break;
    }
  }

  function renderChannels() {
    const ul = $("channels"); ul.replaceChildren();
    for (const c of state.channels) {
      const li = el("li"); const a = el("a", c.id === state.channel ? "on" : "", "#" + c.id);
      a.href = "#"; a.dataset.channel = c.id;
      a.onclick = (e) => { e.preventDefault(); state.channel = c.id; renderChannels(); renderRoom(); };
      li.append(a); ul.append(li);
    }
  }

  function renderRoom() {
    const c = state.channels.find((x) => x.id === state.channel) || { id: state.channel, topic: "" };
    $("room-name").textContent = "#" + c.id; $("room-topic").textContent = c.topic;
    const ol = $("messages"); ol.replaceChildren();
    for (const m of state.history[state.channel] || []) ol.append(renderMsg(m));
    ol.scrollTop = ol.scrollHeight;
  }

  function renderMsg(m) {
    const li = $("t-message").content.firstElementChild.cloneNode(true);
    li.id = "msg-" + m.id; li.dataset.state = m.state; li.classList.add(m.state);
    li.querySelector(".author").textContent = m.author;
    li.querySelector("time").textContent = new Date(m.at).toLocaleTimeString();
    const body = li.querySelector(".body"), extra = li.querySelector(".extra"), status = li.querySelector(".status");
    if (m.state === "held") {
      status.textContent = "held for review";
      if (m.text === null) { body.textContent = "This message is held for review."; body.classList.add("placeholder"); }
      else body.textContent = m.text;
      if (m.own) {
        extra.append(el("div", "reason", "Held: " + (m.reason || "over a threshold")));
        extra.append(appealButton(m.case_id, m.appealed));
      } else if (m.reason) {
        extra.append(el("div", "reason", m.reason));
      }
    } else {
      body.textContent = m.text;
    }
    return li;
  }

  function appealButton(caseId, appealed) {
    const b = el("button", "appeal", appealed ? "Appealed" : "Appeal");
    b.dataset.appealCase = caseId; b.disabled = !!appealed;
    b.onclick = () => {
      const why = prompt("Why should this message be restored?", "This was not meant as an insult.");
      if (why === null) return;
      send({ type: "appeal", case_id: caseId, text: why });
      b.disabled = true;
    };
    return b;
  }

  function upsert(m) {
    const list = state.history[m.channel] || (state.history[m.channel] = []);
    const i = list.findIndex((x) => x.id === m.id);
    if (i >= 0) list[i] = m; else list.push(m);
    if (m.channel !== state.channel) return;
    const old = $("msg-" + m.id), fresh = renderMsg(m);
    if (old) old.replaceWith(fresh); else { $("messages").append(fresh); $("messages").scrollTop = $("messages").scrollHeight; }
  }

  function removeMsg(id) {
    for (const ch of Object.keys(state.history)) state.history[ch] = state.history[ch].filter((x) => x.id !== id);
    const e = $("msg-" + id); if (e) e.remove();
  }

  function renderMembers(members) {
    const ul = $("members"); ul.replaceChildren();
    for (const m of members) {
      const li = el("li", m.muted ? "muted" : "", m.name + (m.moderator ? " (mod)" : "") + (m.muted ? " — timed out" : ""));
      ul.append(li);
    }
  }

  function notice(n) {
    const box = el("div", "notice " + (n.kind || ""));
    box.append(el("div", "notice-text", n.message));
    if (n.text) box.append(el("blockquote", "own-text", n.text));
    if (n.appealable && n.case_id && (n.kind === "delete" || n.kind === "timeout")) box.append(appealButton(n.case_id, false));
    const close = el("button", "close", "×"); close.setAttribute("aria-label", "dismiss"); close.onclick = () => box.remove();
    box.append(close);
    $("notices").append(box);
    const all = $("notices").children;  // keep the newest few; older ones scroll the chat away
    while (all.length > 4) all[0].remove();
  }

  function scoreBars(scores, hits) {
    const wrap = el("div", "scores");
    const hit = new Set((hits || []).map((h) => h.label));
    for (const [label, s] of Object.entries(scores)) {
      const row = el("div", "bar" + (hit.has(label) ? " hit" : ""));
      row.append(el("span", "label", label));
      const track = el("span", "track"); const fill = el("span", "fill"); fill.style.width = Math.round(s * 100) + "%";
      track.append(fill); row.append(track); row.append(el("span", "val", s.toFixed(2)));
      wrap.append(row);
    }
    return wrap;
  }

  function renderMod(m) {
    state.labels = m.labels;
    $("queue-count").textContent = m.queue.length; $("appeal-count").textContent = m.appeals.length;
    const q = $("queue"); q.replaceChildren();
    if (!m.queue.length) q.append(el("p", "muted", "Nothing to review."));
    for (const c of m.queue) {
      const card = el("div", "case"); card.id = "case-" + c.case_id; card.dataset.case = c.case_id;
      const head = el("div", "case-head");
      head.append(el("b", "", `#${c.case_id}`), " ", el("span", "chan", "#" + c.channel), " ", el("span", "", c.author), " ",
        el("span", "badge " + c.action, c.action));
      card.append(head);
      card.append(el("blockquote", "text", c.text === null ? "(text erased)" : c.text));
      card.append(el("div", "rule muted", c.rule || c.reason));
      card.append(scoreBars(c.scores, c.hits));
      const evLabels = Object.keys(c.evidence || {});
      if (evLabels.length) {
        const ev = el("div", "evidence"); ev.append("Words that drove it: ");
        for (const label of evLabels) {
          const span = el("span", "ev"); span.append(el("i", "", label + ": "));
          for (const [w, d] of c.evidence[label]) { const mk = el("mark", "", w); mk.title = `−${d} without it`; span.append(mk, " "); }
          ev.append(span);
        }
        card.append(ev);
      }
      const actions = el("div", "verdicts");
      for (const v of ["restore", "delete", "timeout", "dismiss"]) {
        const b = el("button", "v-" + v, v[0].toUpperCase() + v.slice(1));
        b.dataset.verdict = v;
        b.onclick = () => send({ type: "verdict", case_id: c.case_id, verdict: v });
        actions.append(b);
      }
      card.append(actions); q.append(card);
    }
    const a = $("appeals"); a.replaceChildren();
    if (!m.appeals.length) a.append(el("p", "muted", "No open appeals."));
    for (const x of m.appeals) {
      const card = el("div", "case appeal"); card.id = "appeal-" + x.appeal_id;
      card.append(el("div", "case-head", `Appeal ${x.appeal_id} by ${x.member} on #${x.case_id} (${x.action})`));
      card.append(el("blockquote", "text", x.text === null ? "(text erased)" : x.text));
      card.append(el("div", "appeal-text", "“" + x.appeal_text + "”"));
      card.append(scoreBars(x.scores, []));
      const actions = el("div", "verdicts");
      const g = el("button", "v-restore", "Grant"); g.dataset.appeal = "grant";
      g.onclick = () => send({ type: "decide_appeal", appeal_id: x.appeal_id, granted: true });
      const d = el("button", "v-delete", "Deny"); d.dataset.appeal = "deny";
      d.onclick = () => send({ type: "decide_appeal", appeal_id: x.appeal_id, granted: false });
      actions.append(g, d); card.append(actions); a.append(card);
    }
  }

  $("composer").onsubmit = (e) => {
    e.preventDefault();
    const t = $("text").value;
    if (!t.trim()) return;
    send({ type: "send", channel: state.channel, text: t });
    $("text").value = "";
  };
  $("mod-toggle").onchange = (e) => {
    $("modpanel").hidden = !e.target.checked;
    document.body.classList.toggle("mod", e.target.checked);
    send({ type: "mod", on: e.target.checked });
  };
  function start(name) {
    $("join").hidden = true; $("app").hidden = false;
    const params = new URLSearchParams(location.search);
    if (params.get("channel")) state.channel = params.get("channel");
    connect(name);
    if (params.get("mod") === "1") { $("mod-toggle").checked = true; $("modpanel").hidden = false; document.body.classList.add("mod");
      const once = setInterval(() => { if (state.ws.readyState === 1) { send({ type: "mod", on: true }); clearInterval(once); } }, 50); }
  }
  $("join-form").onsubmit = (e) => { e.preventDefault(); const n = $("join-name").value.trim(); if (n) start(n); };
  const preset = new URLSearchParams(location.search).get("name");
  if (preset) start(preset);
})();
