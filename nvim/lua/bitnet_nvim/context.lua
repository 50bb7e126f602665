-- What an inline completion sees and when a suggestion ends, as llama.vim
-- does it: a bounded window of lines around the cursor (the text before it,
-- and after it for fill-in-the-middle), the prompt's token ids within the
-- context's budget, and the stop rules (at most max_lines lines, none
-- indented less than the cursor's line, no blank line after code). Plain
-- functions without the editor's API, so the specs run them anywhere.
--
-- Reuse: the window's first line and the tokens dropped from the front move
-- in steps, not on every keystroke, so consecutive pauses share their
-- prompt's start and the session pool feeds only what changed at the end.
local M = {}

--- context.span(row, count, n_prefix, n_suffix) -> first, last: the lines
-- [first, last) (0-based) of a buffer of `count` lines to read for a cursor
-- on 0-based `row`: at least n_prefix lines before it (fewer at the top;
-- the start moves in steps of n_prefix / 4 lines) and n_suffix after.
function M.span(row, count, n_prefix, n_suffix)
  local step = math.max(1, math.floor(n_prefix / 4))
  local first = row - n_prefix
  first = first <= 0 and 0 or math.floor(first / step) * step
  return first, math.min(count, row + 1 + n_suffix)
end

-- Moves byte index i (1-based) forward past UTF-8 continuation bytes.
local function char_start(s, i)
  local stop = math.min(#s + 1, i + 3)
  while i < stop do
    local b = s:byte(i)
    if not b or b < 0x80 or b >= 0xC0 then break end
    i = i + 1
  end
  return i
end

--- context.window(lines, cur, col, opts) -> ctx: lines are the buffer's
-- lines read (context.span), cur the cursor's line among them (1-based),
-- col its 0-based byte column. opts.max_bytes bounds each side (the prefix
-- loses its start in steps of max_bytes / 4, the suffix its end);
-- opts.extra is text put before the prefix (chunks from elsewhere).
-- ctx: prefix (the text before the cursor), suffix (after it), before /
-- after (the cursor line's two parts), indent (its leading blanks, bytes),
-- extra.
function M.window(lines, cur, col, opts)
  local line = lines[cur]
  local before, after = line:sub(1, col), line:sub(col + 1)
  local head = table.concat(lines, "\n", 1, cur - 1)
  local prefix = cur > 1 and head .. "\n" .. before or before
  local tail = table.concat(lines, "\n", cur + 1, #lines)
  local suffix = cur < #lines and after .. "\n" .. tail or after
  local max = opts.max_bytes
  if #prefix > max then
    local step = math.max(1, math.floor(max / 4))
    local cut = math.ceil((#prefix - max) / step) * step
    prefix = prefix:sub(char_start(prefix, cut + 1))
  end
  if #suffix > max then
    local stop = max
    while stop > 0 and suffix:byte(stop + 1) and suffix:byte(stop + 1) >= 0x80 and suffix:byte(stop + 1) < 0xC0 do
      stop = stop - 1
    end
    suffix = suffix:sub(1, stop)
  end
  return { prefix = prefix, suffix = suffix, before = before, after = after,
    indent = #line:match("^[ \t]*"), extra = opts.extra or "" }
end

--- context.key(ctx) -> string: what the suggestion for ctx depends on (the
-- cache's key). Buffer text never holds NUL (Neovim gives it as "\n").
function M.key(ctx)
  return ctx.extra .. "\0" .. ctx.prefix .. "\0" .. ctx.suffix
end

-- ids without their front when there are more than `room`: a multiple of
-- room / 4 tokens goes, so the start stays put while the end grows.
local function keep_last(ids, room)
  if #ids <= room then return ids end
  local step = math.max(1, math.floor(room / 4))
  local drop = math.ceil((#ids - room) / step) * step
  local out = {}
  for i = drop + 1, #ids do out[#out + 1] = ids[i] end
  return out
end

local function append(out, ids)
  for _, id in ipairs(ids) do out[#out + 1] = id end
end

--- context.prompt(tok, ctx, budget, fim) -> ids, used_fim: the prompt's
-- token ids, at most `budget`: BOS when the tokenizer adds it, then with
-- `fim` and a vocabulary that has the tokens (tok:fim())
-- <prefix-token> extra..prefix <suffix-token> suffix <middle-token>
-- (the suffix kept to a quarter of the budget), otherwise extra..prefix
-- alone; the prefix loses its front when there is no room. Buffer text
-- that spells a special token is plain text (encode without `special`).
function M.prompt(tok, ctx, budget, fim)
  local ids = {}
  if tok:add_bos() then ids[1] = tok:bos() end
  local pre_id, suf_id, mid_id
  if fim then pre_id, suf_id, mid_id = tok:fim() end
  local prefix = tok:encode(ctx.extra .. ctx.prefix, { bos = false })
  if not pre_id then
    append(ids, keep_last(prefix, budget - #ids))
    return ids, false
  end
  local suffix = tok:encode(ctx.suffix, { bos = false })
  local suffix_room = math.floor(budget / 4)
  for i = #suffix, suffix_room + 1, -1 do suffix[i] = nil end
  local room = budget - #ids - #suffix - 3
  ids[#ids + 1] = pre_id
  append(ids, keep_last(prefix, room))
  ids[#ids + 1] = suf_id
  append(ids, suffix)
  ids[#ids + 1] = mid_id
  return ids, true
end

local function join(lines, n)
  return table.concat(lines, "\n", 1, n)
end

--- context.trim(text, ctx, max_lines) -> shown, stop: the part of the
-- generated `text` worth showing, and whether the generation can stop.
-- It ends before line max_lines + 1 (before the second line when the
-- cursor line has text after the cursor), before a line indented less
-- than the cursor's line, and before a blank line once there is code (on
-- the cursor line or in the suggestion). Lines still being written are
-- judged once they say enough.
function M.trim(text, ctx, max_lines)
  if ctx.after:find("%S") then max_lines = 1 end
  local lines = {}
  for l in (text .. "\n"):gmatch("([^\n]*)\n") do lines[#lines + 1] = l end
  local complete = #lines - 1 -- the last one has no newline after it yet
  local has_code = ctx.before:find("%S") ~= nil
  for i, l in ipairs(lines) do
    if i > max_lines then return join(lines, i - 1), true end
    if i > 1 then
      local blank = not l:find("%S")
      if blank and i <= complete and has_code then return join(lines, i - 1), true end
      if not blank and #l:match("^[ \t]*") < ctx.indent then return join(lines, i - 1), true end
    end
    has_code = has_code or l:find("%S") ~= nil
  end
  return text, false
end

return M
