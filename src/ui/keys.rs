//! Keys to messages, pure: what a key means depends only on the key and on
//! which overlay (if any) is open. `l` edits the learning rate, so the
//! vim keys for moving are `h`, `j` and `k`, with the arrows.

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use super::app::{Editing, Overlay};
use crate::trainer::protocol::Choice;

#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    TogglePause,
    Edit(Editing),
    ToggleKlMode,
    Help,
    Quit,
    NextPane,
    PrevPane,
    Up,
    Down,
    Left,
    Right,
    /// Starts the stage under the cursor; applies the editor's value.
    Enter,
    Stop,
    StepOnce,
    Checkpoint,
    NewPair,
    ToggleColouring,
    Label(Choice),
    /// A response's number: left (1) or right (2) of a pair, or the next
    /// place of a ranking.
    Digit(usize),
    Undo,
    ToggleRankMode,
    NextCriterion,
    NewRound,
    ShowAlerts,
    /// Opens a blind evaluation of the newest policy against its start.
    Eval,
    /// Text typed into the editor.
    Char(char),
    Backspace,
    /// Closes an overlay without acting.
    Cancel,
    /// The answer to "quit while a stage runs?".
    QuitConfirmed {
        checkpoint: bool,
    },
    /// Yes to "train this finished stage again?".
    Confirm,
    /// Empties the editor's input (Ctrl-U, as in a shell).
    ClearInput,
    /// The next or previous chart, whichever pane has the focus.
    Chart {
        forward: bool,
    },
    /// The terminal is gone (hang-up, end of input): nobody can steer, so
    /// a running stage is checkpointed and the workbench quits.
    TerminalLost,
}

/// Every key the workbench knows, for the help overlay: (keys, what).
pub const HELP: &[(&str, &str)] = &[
    ("space", "pause / resume the running stage"),
    ("b / l / T", "edit β / learning rate / temperature"),
    ("K", "GRPO, RLOO: edit K, the responses per prompt"),
    ("m", "KL mode: fixed or adaptive β"),
    ("Enter", "start the stage under the cursor"),
    ("S", "stop the running stage (checkpoint kept)"),
    (".", "while paused: one optimizer step"),
    ("c", "write a checkpoint now"),
    ("1 / 2", "left / right response is better"),
    ("t / x / s", "tie / both bad / skip"),
    ("R", "rank mode: order K responses, best first"),
    ("1 … 9", "rank mode: the next best; Backspace takes one back"),
    ("C", "criterion: overall, helpful, truthful, harmless"),
    ("u", "undo the last judgment"),
    ("r", "draw a new pair (or set)"),
    ("N", "new round: fresh sets from the current policy"),
    ("E", "blind evaluation: newest policy against its start"),
    ("!", "every alert raised, with its numbers"),
    ("v", "colour tokens by KL or log-prob"),
    ("[ ]", "previous / next chart"),
    ("Tab / S-Tab", "next / previous pane"),
    ("←↓↑→ h j k", "move in the pane"),
    ("?", "this help"),
    ("q", "quit (asks when a stage runs)"),
];

/// What the screen's marks and numbers mean, for the help window.
pub const READING: &[(&str, &str)] = &[
    ("▶ ⏸ ⏹ ✓ ✗", "running, paused, stopped early, done, failed; step/total"),
    (
        "held-out",
        "under done stages: judge 0–1, SFT loss nats/token, RM acc, ECE",
    ),
    ("RM +1.23", "reward model score, unbounded: σ(a − b) = P(a is better)"),
    (
        "judge 0.87/1",
        "the evaluator's score, 0 to 1 · T: sampling temperature",
    ),
    ("κ  α", "Cohen's κ you–judge (sets both labelled) · Krippendorff's α"),
    ("colours", "token colour: log π − log π_ref (v: log π); legend below"),
    ("│ │", "chart marks: a parameter you changed (yellow), alert (red)"),
];

pub fn key_to_msg(overlay: &Overlay, key: KeyEvent) -> Option<Msg> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    if key.modifiers.contains(KeyModifiers::CONTROL) && key.code == KeyCode::Char('c') {
        return Some(Msg::Quit);
    }
    match overlay {
        Overlay::Help(_) | Overlay::Alerts => match key.code {
            KeyCode::Esc | KeyCode::Char('?') | KeyCode::Char('q') | KeyCode::Enter => Some(Msg::Cancel),
            KeyCode::Down | KeyCode::Char('j') => Some(Msg::Down),
            KeyCode::Up | KeyCode::Char('k') => Some(Msg::Up),
            _ => None,
        },
        Overlay::Editor(_) if key.modifiers.contains(KeyModifiers::CONTROL) => {
            (key.code == KeyCode::Char('u')).then_some(Msg::ClearInput)
        }
        Overlay::Editor(_) => match key.code {
            KeyCode::Esc => Some(Msg::Cancel),
            KeyCode::Enter => Some(Msg::Enter),
            KeyCode::Backspace => Some(Msg::Backspace),
            KeyCode::Char(c) => Some(Msg::Char(c)),
            _ => None,
        },
        Overlay::ConfirmRerun(_) => match key.code {
            KeyCode::Char('y') | KeyCode::Enter => Some(Msg::Confirm),
            KeyCode::Char('n') | KeyCode::Esc => Some(Msg::Cancel),
            _ => None,
        },
        Overlay::ConfirmQuit => match key.code {
            KeyCode::Char('y') | KeyCode::Enter => Some(Msg::QuitConfirmed { checkpoint: true }),
            KeyCode::Char('n') => Some(Msg::QuitConfirmed { checkpoint: false }),
            KeyCode::Esc => Some(Msg::Cancel),
            _ => None,
        },
        Overlay::None => main_key(key.code),
    }
}

fn main_key(code: KeyCode) -> Option<Msg> {
    Some(match code {
        KeyCode::Char(' ') => Msg::TogglePause,
        KeyCode::Char('b') => Msg::Edit(Editing::Beta),
        KeyCode::Char('l') => Msg::Edit(Editing::LearningRate),
        KeyCode::Char('T') => Msg::Edit(Editing::Temperature),
        KeyCode::Char('K') => Msg::Edit(Editing::GroupSize),
        KeyCode::Char('m') => Msg::ToggleKlMode,
        KeyCode::Char('?') => Msg::Help,
        KeyCode::Char('q') => Msg::Quit,
        KeyCode::Tab => Msg::NextPane,
        KeyCode::BackTab => Msg::PrevPane,
        KeyCode::Up | KeyCode::Char('k') => Msg::Up,
        KeyCode::Down | KeyCode::Char('j') => Msg::Down,
        KeyCode::Left | KeyCode::Char('h') => Msg::Left,
        KeyCode::Right => Msg::Right,
        KeyCode::Enter => Msg::Enter,
        KeyCode::Char('S') => Msg::Stop,
        KeyCode::Char('.') => Msg::StepOnce,
        KeyCode::Char('c') => Msg::Checkpoint,
        KeyCode::Char('r') => Msg::NewPair,
        KeyCode::Char('v') => Msg::ToggleColouring,
        KeyCode::Char('[') => Msg::Chart { forward: false },
        KeyCode::Char(']') => Msg::Chart { forward: true },
        KeyCode::Char(c @ '1'..='9') => Msg::Digit(c as usize - '0' as usize),
        KeyCode::Backspace => Msg::Backspace,
        KeyCode::Char('R') => Msg::ToggleRankMode,
        KeyCode::Char('C') => Msg::NextCriterion,
        KeyCode::Char('N') => Msg::NewRound,
        KeyCode::Char('!') => Msg::ShowAlerts,
        KeyCode::Char('E') => Msg::Eval,
        KeyCode::Char('t') => Msg::Label(Choice::Tie),
        KeyCode::Char('x') => Msg::Label(Choice::BothBad),
        KeyCode::Char('s') => Msg::Label(Choice::Skip),
        KeyCode::Char('u') => Msg::Undo,
        KeyCode::Esc => Msg::Cancel,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ui::app::Editor;

    fn press(overlay: &Overlay, code: KeyCode) -> Option<Msg> {
        key_to_msg(overlay, KeyEvent::new(code, KeyModifiers::NONE))
    }

    #[test]
    fn the_documented_keys() {
        let none = Overlay::None;
        assert_eq!(press(&none, KeyCode::Char(' ')), Some(Msg::TogglePause));
        assert_eq!(press(&none, KeyCode::Char('b')), Some(Msg::Edit(Editing::Beta)));
        assert_eq!(press(&none, KeyCode::Char('l')), Some(Msg::Edit(Editing::LearningRate)));
        assert_eq!(press(&none, KeyCode::Char('?')), Some(Msg::Help));
        assert_eq!(press(&none, KeyCode::Char('q')), Some(Msg::Quit));
        assert_eq!(press(&none, KeyCode::Tab), Some(Msg::NextPane));
        assert_eq!(press(&none, KeyCode::Char('1')), Some(Msg::Digit(1)));
        assert_eq!(press(&none, KeyCode::Char('9')), Some(Msg::Digit(9)));
        assert_eq!(press(&none, KeyCode::Char('R')), Some(Msg::ToggleRankMode));
        assert_eq!(press(&none, KeyCode::Char('t')), Some(Msg::Label(Choice::Tie)));
        assert_eq!(press(&none, KeyCode::Char('x')), Some(Msg::Label(Choice::BothBad)));
        assert_eq!(press(&none, KeyCode::Char('s')), Some(Msg::Label(Choice::Skip)));
        assert_eq!(press(&none, KeyCode::Char('u')), Some(Msg::Undo));
        assert_eq!(press(&none, KeyCode::Char('j')), Some(Msg::Down));
        assert_eq!(press(&none, KeyCode::Up), Some(Msg::Up));
        assert_eq!(press(&none, KeyCode::Char('Z')), None);
    }

    #[test]
    fn overlays_take_the_keys_they_need() {
        let editor = Overlay::Editor(Editor {
            editing: Editing::Beta,
            input: String::new(),
            error: None,
            selected: false,
        });
        // In the editor, `q` and `1` are text, not quit and a label.
        assert_eq!(press(&editor, KeyCode::Char('q')), Some(Msg::Char('q')));
        assert_eq!(press(&editor, KeyCode::Char('1')), Some(Msg::Char('1')));
        assert_eq!(press(&editor, KeyCode::Esc), Some(Msg::Cancel));
        assert_eq!(
            press(&Overlay::ConfirmQuit, KeyCode::Char('n')),
            Some(Msg::QuitConfirmed { checkpoint: false })
        );
        assert_eq!(press(&Overlay::Help(0), KeyCode::Char('1')), None);
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(key_to_msg(&editor, ctrl_c), Some(Msg::Quit));
    }
}
