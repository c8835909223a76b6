"""The parts of the report page that only `wbc-edge review` serves: the instructions, the keyboard
script, the sign form, and the read-only notice with its Amend button once a version is signed.

The script is inline (the page loads nothing) and only moves focus and sets the choice of each
cell's select; without it the selects and buttons still work.
"""

from __future__ import annotations

import json
from html import escape
from typing import Any

from wbc_edge.edge_app.identity import MAX_LENGTH

NOT_A_CELL = "not a white cell"


def instructions_html(classes: list[str]) -> str:
    """Short instructions and the keys, on top of the review page."""
    keys = ", ".join(f"<kbd>{i}</kbd> {escape(c)}" for i, c in enumerate(classes, 1))
    return (
        "<div class='howto noprint'><b>How to review.</b> Look at every cell, uncertain ones "
        "first (orange). <kbd>Enter</kbd> confirms the model's class; a number changes it "
        f"({keys}, <kbd>0</kbd> not a white cell); <kbd>U</kbd> undoes; <kbd>J</kbd>/<kbd>K</kbd> "
        "or the arrows move; <kbd>O</kbd> opens the cell's context picture. A class's "
        "<i>Confirm the rest</i> button confirms its cells not yet looked at. Save often. "
        "<b>Sign</b> when no cell is left: a signed version is read-only, and a later change "
        "starts a new version (the signed one is kept)."
        "<p class=progress><b id=done>0</b> reviewed, <b id=todo>0</b> to go</p></div>"
    )


def sign_form_html(token: str, version: int) -> str:
    """The buttons at the foot of the review form: save, finish, and sign as a named reviewer."""
    t = escape(token)
    return (
        "<p class='buttons noprint'><button type=submit>Save</button> "
        f"<button type=submit formaction='done?token={t}'>Save and finish</button> "
        f"<label>Reviewer <input id=reviewer name=reviewer maxlength={MAX_LENGTH} "
        "autocomplete=name placeholder='your name'></label> "
        f"<button id=sign type=submit formaction='sign?token={t}'>Sign version {version}"
        "</button></p></form>"
    )


def amend_form_html(token: str, review: dict[str, Any]) -> str:
    """A signed version: read-only; Amend starts the next version from its decisions."""
    version = review.get("version", 1)
    return (
        f"<form class=noprint method=post action='amend?token={escape(token)}'>"
        f"<p class=buttons>Version {version} is signed and read-only. "
        f"<button type=submit>Amend: start version {version + 1}</button> "
        "(this version and its signature stay in the history)</p></form>"
    )


def keyboard_script(classes: list[str]) -> str:
    """The review page's keys (see `instructions_html`) and its progress counter."""
    names = json.dumps([*classes, NOT_A_CELL]).replace("<", "\\u003c")
    return f"<script type=application/json id=classes>{names}</script><script>{_SCRIPT}</script>"


_SCRIPT = """
(()=>{
const figs=[...document.querySelectorAll('figure[data-label]')]
 .filter(f=>f.querySelector('select'));
const names=JSON.parse(document.getElementById('classes').textContent);
let at=0;
const sel=f=>f.querySelector('select');
const state=f=>{const v=sel(f).value;return v===''?'todo':(v===f.dataset.label?'ok':'changed');};
const paint=f=>{f.dataset.state=state(f);};
function tally(){const todo=figs.filter(f=>state(f)==='todo').length;
 document.getElementById('todo').textContent=todo;
 document.getElementById('done').textContent=figs.length-todo;}
function go(k,still){if(!figs.length)return;at=Math.max(0,Math.min(figs.length-1,k));
 figs[at].focus({preventScroll:true});if(!still)figs[at].scrollIntoView({block:'nearest'});}
function decide(f,v){sel(f).value=v;paint(f);tally();go(figs.indexOf(f)+1);}
figs.forEach((f,i)=>{f.tabIndex=0;paint(f);f.addEventListener('focus',()=>{at=i;});
 sel(f).addEventListener('change',()=>{paint(f);tally();});});
document.addEventListener('keydown',e=>{
 const t=e.target.tagName;
 if(t==='INPUT'||t==='SELECT'||t==='BUTTON'||e.ctrlKey||e.metaKey||e.altKey)return;
 const f=figs[at];if(!f)return;const k=e.key.toLowerCase();
 if(k==='enter'||k===' '||k==='c')decide(f,f.dataset.label);
 else if(/^[1-9]$/.test(k)&&+k<names.length)decide(f,names[+k-1]);
 else if(k==='0'||k==='x')decide(f,names[names.length-1]);
 else if(k==='u'||k==='backspace'){sel(f).value='';paint(f);tally();}
 else if(k==='j'||k==='arrowright'||k==='arrowdown')go(at+1);
 else if(k==='k'||k==='arrowleft'||k==='arrowup')go(at-1);
 else if(k==='o'){const a=f.querySelector('a.ctx');if(a)window.open(a.href,'_blank');}
 else return;
 e.preventDefault();});
document.querySelectorAll('button[data-confirm]').forEach(b=>b.addEventListener('click',()=>{
 document.querySelectorAll('#'+b.dataset.confirm+' figure[data-label]').forEach(f=>{
  if(sel(f)&&state(f)==='todo'){sel(f).value=f.dataset.label;paint(f);}});tally();}));
const sign=document.getElementById('sign');
if(sign)sign.addEventListener('click',e=>{const left=figs.findIndex(f=>state(f)==='todo');
 const who=document.getElementById('reviewer');
 if(left>=0){e.preventDefault();alert('Confirm or change every cell before signing.');go(left);}
 else if(!who.value.trim()){e.preventDefault();who.focus();}});
tally();go(0,true);
})();
"""
