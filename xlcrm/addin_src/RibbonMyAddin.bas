Attribute VB_Name = "RibbonMyAddin"
' xlcrm: every ribbon button calls OnAction; its tag names the Python action.
Sub OnAction(control As IRibbonControl)
    RunPython "import xlcrm.ribbon; xlcrm.ribbon.dispatch('" & control.Tag & "')"
End Sub
