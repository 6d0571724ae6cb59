/* page.c: the chat page served at "/". One self-contained HTML document with
 * inline CSS and JS: it keeps the conversation in the browser, posts it to
 * /v1/chat/completions with "stream": true and appends the text of each
 * server-sent event as it arrives. Model output is inserted as text, never as
 * HTML. "Stop" aborts the fetch, which closes the connection; the server then
 * cancels the generation. */
#include "api.h"

#include <string.h>

static const char page[] =
    "<!doctype html>\n"
    "<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<title>coreai</title>\n"
    "<style>\n"
    "body{font:15px/1.45 system-ui,sans-serif;margin:0;display:flex;flex-direction:column;"
    "height:100vh;background:#fafafa;color:#222}\n"
    "header{padding:8px 14px;background:#222;color:#eee;font-weight:600}\n"
    "header small{font-weight:400;color:#aaa;margin-left:8px}\n"
    "#log{flex:1;overflow-y:auto;padding:14px}\n"
    ".m{max-width:46em;margin:0 auto 10px;padding:8px 12px;border-radius:8px;"
    "white-space:pre-wrap;word-wrap:break-word}\n"
    ".user{background:#dbeafe}.assistant{background:#fff;border:1px solid #ddd}"
    ".error{background:#fee2e2}\n"
    "form{display:flex;gap:8px;padding:10px 14px;border-top:1px solid #ddd;background:#fff}\n"
    "textarea{flex:1;font:inherit;padding:6px;resize:vertical;min-height:2.6em}\n"
    "input{width:4.5em}label{font-size:12px;color:#555;display:flex;flex-direction:column}\n"
    "</style></head><body>\n"
    "<header>coreai <small id=\"model\"></small></header>\n"
    "<div id=\"log\"></div>\n"
    "<form id=\"f\">\n"
    "<textarea id=\"q\" placeholder=\"Message (Enter to send, Shift+Enter for a new line)\">"
    "</textarea>\n"
    "<label>max tokens<input id=\"n\" type=\"number\" value=\"256\" min=\"1\"></label>\n"
    "<label>temperature<input id=\"t\" type=\"number\" value=\"0.7\" min=\"0\" max=\"2\" "
    "step=\"0.1\"></label>\n"
    "<button id=\"go\">Send</button><button id=\"reset\" type=\"button\">Reset</button>\n"
    "</form>\n"
    "<script>\n"
    "const log=document.getElementById('log'),q=document.getElementById('q'),"
    "go=document.getElementById('go');\n"
    "let msgs=[],busy=null;\n"
    "fetch('/v1/models').then(r=>r.json()).then(j=>{"
    "document.getElementById('model').textContent=j.data[0].id}).catch(()=>{});\n"
    "function add(cls,text){const d=document.createElement('div');d.className='m '+cls;"
    "d.textContent=text;log.appendChild(d);log.scrollTop=log.scrollHeight;return d}\n"
    "document.getElementById('reset').onclick=()=>{if(busy)busy.abort();msgs=[];"
    "log.textContent=''};\n"
    "q.addEventListener('keydown',e=>{if(e.key==='Enter'&&!e.shiftKey){e.preventDefault();"
    "document.getElementById('f').requestSubmit()}});\n"
    "document.getElementById('f').onsubmit=async e=>{\n"
    " e.preventDefault();\n"
    " if(busy){busy.abort();return}\n"
    " const text=q.value.trim();if(!text)return;q.value='';\n"
    " msgs.push({role:'user',content:text});add('user',text);\n"
    " const out=add('assistant','');let reply='';\n"
    " busy=new AbortController();go.textContent='Stop';\n"
    " try{\n"
    "  const r=await fetch('/v1/chat/completions',{method:'POST',signal:busy.signal,"
    "headers:{'Content-Type':'application/json'},body:JSON.stringify({messages:msgs,"
    "stream:true,max_tokens:+document.getElementById('n').value||256,"
    "temperature:+document.getElementById('t').value})});\n"
    "  if(!r.ok){const j=await r.json().catch(()=>null);"
    "throw new Error(j&&j.error?j.error.message:r.statusText)}\n"
    "  const rd=r.body.getReader(),dec=new TextDecoder();let buf='';\n"
    "  for(;;){const {value,done}=await rd.read();if(done)break;"
    "buf+=dec.decode(value,{stream:true});let i;\n"
    "   while((i=buf.indexOf('\\n\\n'))>=0){const ev=buf.slice(0,i);buf=buf.slice(i+2);\n"
    "    for(const line of ev.split('\\n')){if(!line.startsWith('data: '))continue;"
    "const d=line.slice(6);if(d==='[DONE]')continue;const j=JSON.parse(d);\n"
    "     if(j.error)throw new Error(j.error.message);\n"
    "     const c=j.choices&&j.choices[0]&&j.choices[0].delta.content;"
    "if(c){reply+=c;out.textContent=reply;log.scrollTop=log.scrollHeight}}}}\n"
    "  msgs.push({role:'assistant',content:reply});\n"
    " }catch(err){if(err.name==='AbortError'&&reply){msgs.push({role:'assistant',"
    "content:reply})}else{msgs.pop();if(err.name!=='AbortError'){out.className='m error';"
    "out.textContent=reply+(reply?'\\n':'')+'error: '+err.message}}}\n"
    " finally{busy=null;go.textContent='Send'}\n"
    "};\n"
    "</script></body></html>\n";

const char *cai__api_chat_page(size_t *n_bytes)
{
    *n_bytes = sizeof(page) - 1;
    return page;
}
