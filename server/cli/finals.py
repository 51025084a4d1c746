"""``arena competition publish|finals|rerun``: the organiser's end of a competition.

``publish`` reveals the final results, ``finals`` lists the final phase's evaluations and
``rerun`` re-evaluates the submissions whose latest result in a phase ran an older version of
the competition's suite. The commands join the ``competition`` group
(server/cli/competition.py); the state changes are in server/state/finals.py.
"""

import click


@click.command("publish")
@click.argument("slug")
def publish(slug: str) -> None:
    """Publish competition SLUG's final results (once the development phase has ended)."""
    from server.state import finals
    from server.state.competition_spec import iso_utc
    from server.state.competitions import get_competition
    from server.state.db import session_scope
    from server.state.tables import utcnow

    with session_scope() as session:
        found = get_competition(session, slug)
        if found is None:
            raise click.ClickException(f"No competition {slug!r}.")
        already = found.published_at is not None
        try:
            finals.publish(session, found, utcnow())
        except finals.FinalsError as error:
            raise click.ClickException(str(error)) from None
        state = "was already published" if already else "published"
        assert found.published_at is not None  # publish() set it or refused
        click.echo(f"Competition {slug!r} {state} at {iso_utc(found.published_at)}.")


@click.command("finals")
@click.argument("slug")
def final_status(slug: str) -> None:
    """List competition SLUG's final evaluations: id, submission, team, status, score."""
    from server.state import finals
    from server.state.competition_spec import iso_utc
    from server.state.competitions import get_competition
    from server.state.config import parse_score
    from server.state.db import session_scope
    from server.state.scoring import score_of

    with session_scope() as session:
        found = get_competition(session, slug)
        if found is None:
            raise click.ClickException(f"No competition {slug!r}.")
        if finals.final_phase(found) is None:
            raise click.ClickException(f"The competition {slug!r} has no final phase.")
        if found.finals_started_at is None:
            click.echo("The final phase has not started: it starts when the development phase ends.")
            return
        click.echo(f"Final phase started at {iso_utc(found.finals_started_at)}.")
        weights = parse_score(found.score)
        for evaluation in finals.final_evaluations(session, found):
            result = evaluation.result
            score = score_of(result.metrics, weights) if result is not None else None
            shown = f"{100 * score:.2f}%" if score is not None else "—"
            team = evaluation.submission.team.name
            click.echo(f"{evaluation.id}\t#{evaluation.submission_id}\t{team}\t{evaluation.status}\t{shown}")


@click.command("rerun")
@click.argument("slug")
@click.option("--phase", "phase_name", default=None, help="The phase's name; every phase by default.")
def rerun(slug: str, phase_name: str | None) -> None:
    """Re-evaluate competition SLUG's submissions whose latest result ran an older suite version."""
    from server.state import finals
    from server.state.competitions import get_competition
    from server.state.db import session_scope

    with session_scope() as session:
        found = get_competition(session, slug)
        if found is None:
            raise click.ClickException(f"No competition {slug!r}.")
        try:
            count = finals.rerun(session, found, phase_name)
        except finals.FinalsError as error:
            raise click.ClickException(str(error)) from None
        version = finals.current_suite_version(found.suite)
        click.echo(f"{count} evaluations queued under suite {found.suite} version {version}.")


COMMANDS = [publish, final_status, rerun]
