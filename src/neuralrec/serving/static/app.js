// The try-it page: search titles, like movies, see recommendations (POST /recommend) and the
// movies similar to the last one liked (GET /similar). Plain DOM code, no build step.
// Every text from the server goes in through textContent, never innerHTML.
"use strict";

const KEY_STORAGE = "neuralrec-api-key";
const state = {
  liked: new Map(), // item id -> title, in the order liked
  focus: null, // the item whose neighbours are shown
  apiKey: sessionStorage.getItem(KEY_STORAGE) || "",
  generation: 0, // answers of an older refresh are dropped
};

const $ = (id) => document.getElementById(id);

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (state.apiKey) headers["X-API-Key"] = state.apiKey;
  const response = await fetch(path, { ...options, headers });
  if (response.status === 401) {
    $("key-form").hidden = false;
    throw new Error("this server needs an API key");
  }
  const body = await response.json();
  if (!response.ok) {
    throw new Error(typeof body.detail === "string" ? body.detail : "invalid request");
  }
  return body;
}

function label(row) {
  return row.title || `item ${row.item}`;
}

function showError(error) {
  $("status").textContent = error.message;
}

function itemRow(row, { score = null, action = null } = {}) {
  const li = document.createElement("li");
  li.dataset.item = String(row.item);
  const name = document.createElement("span");
  name.className = "title";
  name.textContent = label(row);
  li.append(name);
  if (score !== null) {
    const s = document.createElement("span");
    s.className = "score";
    s.textContent = ` ${score.toFixed(3)}`;
    li.append(s);
  }
  if (action) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = action.className;
    button.textContent = action.text;
    button.addEventListener("click", action.onClick);
    li.append(button);
  }
  return li;
}

function likeAction(row) {
  return { text: "Like", className: "like", onClick: () => like(row) };
}

function render(listId, rows, makeRow) {
  $(listId).replaceChildren(...rows.map(makeRow));
}

function like(row) {
  state.liked.set(row.item, label(row));
  state.focus = row.item;
  refresh();
}

function unlike(item) {
  state.liked.delete(item);
  if (state.focus === item) state.focus = [...state.liked.keys()].pop() ?? null;
  refresh();
}

async function search(query) {
  try {
    const body = await api(`/items?search=${encodeURIComponent(query)}&limit=15`);
    render("search-results", body.items, (row) => itemRow(row, { action: likeAction(row) }));
    $("status").textContent = body.items.length ? "" : `no title contains “${query}”`;
  } catch (error) {
    showError(error);
  }
}

async function refresh() {
  const generation = ++state.generation;
  const liked = [...state.liked.entries()];
  $("liked-empty").hidden = liked.length > 0;
  render("liked", liked, ([item, title]) =>
    itemRow({ item, title }, { action: { text: "Remove", className: "remove", onClick: () => unlike(item) } }),
  );
  try {
    const recs = await api("/recommend", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ items: liked.map(([item]) => item), k: 10 }),
    });
    if (generation !== state.generation) return;
    $("recommendations-heading").textContent =
      recs.basis === "history" ? "Recommended for you" : "Popular right now";
    render("recommendations", recs.items, (row) => itemRow(row, { score: row.score, action: likeAction(row) }));
    await refreshSimilar(generation);
    $("status").textContent = "";
  } catch (error) {
    showError(error);
  }
}

async function refreshSimilar(generation) {
  $("similar-empty").hidden = state.focus !== null;
  if (state.focus === null) {
    $("similar-heading").textContent = "Similar movies";
    $("similar").replaceChildren();
    return;
  }
  const body = await api(`/similar/${encodeURIComponent(state.focus)}?k=10`);
  if (generation !== state.generation) return;
  $("similar-heading").textContent = `Similar to ${label(body.item)}`;
  render("similar", body.similar, (row) => itemRow(row, { score: row.score, action: likeAction(row) }));
}

async function showModel() {
  try {
    const info = await api("/model");
    const when = info.trained_at ? `, trained ${info.trained_at}` : "";
    $("model-info").textContent = `${info.model} on ${info.dataset || "?"}: ${info.n_items} items${when}`;
  } catch (error) {
    $("model-info").textContent = "";
    showError(error);
  }
}

function start() {
  let timer = null;
  $("search").addEventListener("input", (event) => {
    clearTimeout(timer);
    const query = event.target.value.trim();
    timer = setTimeout(() => query && search(query), 250);
  });
  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    clearTimeout(timer);
    search($("search").value.trim());
  });
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    state.apiKey = $("api-key").value;
    sessionStorage.setItem(KEY_STORAGE, state.apiKey);
    $("key-form").hidden = true;
    $("status").textContent = "";
    showModel();
    refresh();
  });
  showModel();
  refresh();
}

document.addEventListener("DOMContentLoaded", start);
