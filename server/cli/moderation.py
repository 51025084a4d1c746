"""``arena competition hide|unhide|disqualify|reinstate``: the organiser's moderation.

A hidden submission counts on no board (its team's next best does); a disqualified team is
listed apart from the ranking. Each reason is public. The commands join the ``competition``
group (server/cli/competition.py).
"""

import click

REASON_HELP = "Shown publicly: printable text on one line, at most 500 characters."


@click.command("hide")
@click.argument("submission_id", type=click.IntRange(min=1))
@click.option("--reason", required=True, help=REASON_HELP)
def hide(submission_id: int, reason: str) -> None:
    """Leave submission SUBMISSION_ID out of every board, saying why."""
    from server.state import moderation
    from server.state.db import session_scope
    from server.state.submissions import get_submission

    with session_scope() as session:
        submission = get_submission(session=session, submission_id=submission_id)
        if submission is None:
            raise click.ClickException(f"No submission {submission_id}.")
        try:
            changed = moderation.hide_submission(session=session, submission=submission, reason=reason)
        except moderation.ReasonError as error:
            raise click.ClickException(str(error)) from None
        state = "hidden" if changed else "was already hidden"
        team = submission.team.name
        click.echo(f"Submission {submission_id} of {team!r} {state}: {submission.hidden_reason}")


@click.command("unhide")
@click.argument("submission_id", type=click.IntRange(min=1))
def unhide(submission_id: int) -> None:
    """Let submission SUBMISSION_ID count on the boards again."""
    from server.state import moderation
    from server.state.db import session_scope
    from server.state.submissions import get_submission

    with session_scope() as session:
        submission = get_submission(session=session, submission_id=submission_id)
        if submission is None:
            raise click.ClickException(f"No submission {submission_id}.")
        changed = moderation.unhide_submission(session=session, submission=submission)
        state = "counts again" if changed else "was not hidden"
        click.echo(f"Submission {submission_id} of {submission.team.name!r} {state}.")


@click.command("disqualify")
@click.argument("team")
@click.option("--reason", required=True, help=REASON_HELP)
def disqualify(team: str, reason: str) -> None:
    """Take team TEAM (its name) out of the ranking, saying why."""
    from server.state import moderation
    from server.state.db import session_scope
    from server.state.teams import team_by_name

    with session_scope() as session:
        found = team_by_name(session=session, name=team)
        if found is None:
            raise click.ClickException(f"No team named {team!r}.")
        try:
            changed = moderation.disqualify_team(session=session, team=found, reason=reason)
        except moderation.ReasonError as error:
            raise click.ClickException(str(error)) from None
        state = "disqualified" if changed else "was already disqualified"
        click.echo(f"Team {team!r} {state}: {found.disqualified_reason}")


@click.command("reinstate")
@click.argument("team")
def reinstate(team: str) -> None:
    """Rank team TEAM (its name) again."""
    from server.state import moderation
    from server.state.db import session_scope
    from server.state.teams import team_by_name

    with session_scope() as session:
        found = team_by_name(session=session, name=team)
        if found is None:
            raise click.ClickException(f"No team named {team!r}.")
        changed = moderation.reinstate_team(session=session, team=found)
        state = "reinstated" if changed else "was not disqualified"
        click.echo(f"Team {team!r} {state}.")


#: The commands, in the order ``arena competition --help`` lists them.
COMMANDS = (hide, unhide, disqualify, reinstate)
