"""The search page and the figure page: static HTML + plain JavaScript calling the API (no CDN, no build step).

A token, when the server needs one, is taken from the page's `?token=` and kept in the browser's localStorage.
"""

_COMMON_JS = """
const params = new URLSearchParams(location.search);
if (params.get('token')) localStorage.setItem('workbench-token', params.get('token'));
const TOKEN = localStorage.getItem('workbench-token') || '';
const AUTH = TOKEN ? {Authorization: 'Bearer ' + TOKEN} : {};
const withToken = (url) => TOKEN ? url + '?token=' + encodeURIComponent(TOKEN) : url;
const pmcLink = (pmcid) => 'https://www.ncbi.nlm.nih.gov/pmc/articles/' + pmcid + '/';
function text(tag, value, cls) { const e = document.createElement(tag); e.textContent = value ?? ''; if (cls) e.className = cls; return e; }
"""  # noqa: E501

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem; color: #222; }
form { display: flex; flex-wrap: wrap; gap: .5rem; align-items: center; margin-bottom: 1rem; }
#q { flex: 1 1 24rem; padding: .5rem; font-size: 1rem; }
#drop { border: 2px dashed #999; padding: .45rem .8rem; border-radius: 6px; cursor: pointer; }
#drop.has { border-color: #2a7; background: #efe; }
#grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(200px, 1fr)); gap: 1rem; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: .5rem; font-size: .85rem; }
.card img { width: 100%; height: 160px; object-fit: contain; background: #f6f6f6; cursor: pointer; }
.caption { max-height: 5.5em; overflow: hidden; }
.meta { color: #666; font-size: .75rem; }
#status { color: #666; margin: .5rem 0; }
"""

SEARCH_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>BIOMEDICA Workbench search</title>
<style>{_STYLE}</style></head>
<body>
<h1>Search figures</h1>
<form id="form">
  <input id="q" name="q" type="search" placeholder="Describe what you look for, e.g. fluorescence microscopy">
  <label id="drop">Drop or choose an image <input id="image" type="file" accept="image/*" hidden></label>
  <select id="licence" title="licence group">
    <option value="">any licence</option><option value="commercial">commercial</option>
    <option value="noncommercial">noncommercial</option><option value="other">other</option>
  </select>
  <input id="year_from" type="number" placeholder="from year" style="width:7em">
  <input id="year_to" type="number" placeholder="to year" style="width:7em">
  <input id="k" type="number" value="24" min="1" max="200" style="width:5em" title="results">
  <button id="go" type="submit">Search</button>
</form>
<div id="status"></div>
<div id="grid"></div>
<script>
{_COMMON_JS}
const form = document.getElementById('form'), grid = document.getElementById('grid');
const status = document.getElementById('status'), drop = document.getElementById('drop');
const imageInput = document.getElementById('image');
let imageFile = null;
imageInput.addEventListener('change', () => {{ imageFile = imageInput.files[0] || null; drop.classList.toggle('has', !!imageFile); }});
drop.addEventListener('dragover', (e) => e.preventDefault());
drop.addEventListener('drop', (e) => {{ e.preventDefault(); imageFile = e.dataTransfer.files[0] || null; drop.classList.toggle('has', !!imageFile); }});
function currentFilter() {{
  const f = {{}};
  const lic = document.getElementById('licence').value; if (lic) f.license_groups = [lic];
  const yf = document.getElementById('year_from').value; if (yf) f.year_from = parseInt(yf);
  const yt = document.getElementById('year_to').value; if (yt) f.year_to = parseInt(yt);
  return f;
}}
function card(r) {{
  const div = document.createElement('div'); div.className = 'card'; div.dataset.key = r.key;
  const img = document.createElement('img'); img.src = withToken('/figures/' + encodeURIComponent(r.key));
  img.alt = r.caption || r.key; img.loading = 'lazy';
  img.addEventListener('click', () => {{ location.href = '/view/' + encodeURIComponent(r.key); }});
  div.appendChild(img);
  div.appendChild(text('div', r.caption, 'caption'));
  const meta = text('div', '', 'meta');
  const a = document.createElement('a'); a.href = pmcLink(r.pmcid); a.textContent = r.pmcid; a.target = '_blank';
  meta.appendChild(a);
  meta.appendChild(document.createTextNode(' · ' + r.license_group + ' · ' + Object.entries(r.ranks).map(([l, n]) => l + ' #' + n).join(', ')));
  div.appendChild(meta);
  return div;
}}
form.addEventListener('submit', async (e) => {{
  e.preventDefault();
  const q = document.getElementById('q').value.trim(), k = parseInt(document.getElementById('k').value) || 24;
  if (!q && !imageFile) {{ status.textContent = 'Type a query or drop an image.'; return; }}
  status.textContent = 'Searching…'; grid.replaceChildren();
  let init;
  if (imageFile) {{
    const body = new FormData(); body.append('image', imageFile); if (q) body.append('text', q);
    body.append('k', String(k)); body.append('filter', JSON.stringify(currentFilter()));
    init = {{method: 'POST', body, headers: AUTH}};
  }} else {{
    init = {{method: 'POST', body: JSON.stringify({{text: q, k, filter: currentFilter()}}),
            headers: {{...AUTH, 'Content-Type': 'application/json'}}}};
  }}
  const reply = await fetch('/search', init), data = await reply.json();
  if (!reply.ok) {{ status.textContent = 'Error: ' + data.error; return; }}
  status.textContent = data.results.length + ' results in ' + Math.round(data.timings_ms.total) + ' ms';
  data.results.forEach((r) => grid.appendChild(card(r)));
}});
</script>
</body></html>
"""  # noqa: E501

FIGURE_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Figure</title>
<style>{_STYLE} #figure img {{ max-width: 100%; max-height: 70vh; }}</style></head>
<body>
<p><a href="/">← search</a></p>
<div id="figure"><h1 id="title">Figure</h1><img id="image" alt=""><p id="caption"></p><p class="meta" id="meta"></p></div>
<script>
{_COMMON_JS}
const key = decodeURIComponent(location.pathname.split('/').pop());
(async () => {{
  const reply = await fetch('/figures/' + encodeURIComponent(key) + '.json', {{headers: AUTH}}), row = await reply.json();
  if (!reply.ok) {{ document.getElementById('title').textContent = row.error; return; }}
  document.getElementById('title').textContent = (row.figure_label || 'Figure') + ' — ' + (row.article_title || '');
  document.getElementById('image').src = withToken('/figures/' + encodeURIComponent(key));
  document.getElementById('caption').textContent = row.caption || '';
  const meta = document.getElementById('meta');
  const a = document.createElement('a'); a.href = pmcLink(row.pmcid); a.textContent = row.pmcid + ' on PMC'; a.id = 'pmc';
  meta.appendChild(a);
  meta.appendChild(document.createTextNode(' · ' + (row.article_journal || '') + ' ' + (row.article_year || '') +
    ' · licence ' + (row.license || row.license_group) + ' · ' + row.width + '×' + row.height));
}})();
</script>
</body></html>
"""  # noqa: E501
